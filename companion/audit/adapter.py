"""PEFT LoRA adapter folders: adapter_config.json + adapter_model.safetensors, fitted to a base.

PEFT saves each adapted module `M` of the wrapped model as `base_model.model.M.lora_A.weight`
(r x in) and `...lora_B.weight` (out x r); embeddings as `M.lora_embedding_A` (r x vocab) and
`M.lora_embedding_B` (dim x r). Merging adds `scaling * B @ A` to `M.weight` (transposed for
embeddings and for `fan_in_fan_out` Conv1D layers), with `scaling = lora_alpha / r`, or
`lora_alpha / sqrt(r)` when `use_rslora` is set; `alpha_pattern` and `rank_pattern` override
alpha and r per module. Tensors without a LoRA marker (`modules_to_save`, saved embedding
layers as `M.base_layer.weight`) replace the base tensor whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from math import sqrt
from pathlib import Path
from typing import Any

from companion.audit.checkpoint import Checkpoint, _load_json, _open_file
from companion.audit.source import TensorFile
from companion.errors import InputError

CONFIG = "adapter_config.json"
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PREFIX = "base_model.model."
_LORA = re.compile(r"^(?P<module>.+)\.(?P<part>lora_A\.weight|lora_B\.weight|lora_embedding_[AB])$")
_REFUSED = {
    "lora_magnitude_vector": "DoRA (use_dora) merges rescale every column by the merged norm",
    "lora_B.bias": "lora_bias adapters add a bias term",
}


@dataclass(frozen=True)
class LoraModule:
    """One adapted module: its base tensor, its two factors and how they merge."""

    module: str
    target: str  # the base tensor the delta is added to
    a: str  # adapter tensor names
    b: str
    embedding: bool
    transposed: bool  # delta = (B @ A).T (embeddings, fan_in_fan_out)
    scaling: float
    rank: int


@dataclass
class Adapter:
    """A parsed adapter folder: its config, weights file, modules and whole-tensor replacements."""

    folder: Path
    config: dict[str, Any]
    file: TensorFile
    modules: list[LoraModule]
    replacements: dict[str, str]  # base tensor name -> adapter tensor name

    @property
    def inputs(self) -> list[Path]:
        """The files this adapter was read from (for the manifest)."""
        return [self.folder / CONFIG, self.file.path]

    @property
    def base_name(self) -> str:
        """The base the adapter says it was trained on (free text, never fetched)."""
        return str(self.config.get("base_model_name_or_path") or "not recorded")

    def close(self) -> None:
        """Close the weights file."""
        self.file.close()


@dataclass(frozen=True)
class AdapterPair:
    """`BASE+ADAPTER`: a base checkpoint seen with an adapter merged on the fly."""

    base: Path
    adapter: Path

    def __str__(self) -> str:
        return f"{self.base}+{self.adapter}"


def is_adapter(path: Path) -> bool:
    """Whether a path is a PEFT adapter folder (or its adapter_config.json)."""
    folder = path.parent if path.name == CONFIG else path
    return (folder / CONFIG).is_file()


def split_pair(text: str, resolve: Callable[[str], Path]) -> tuple[Path, Path] | None:
    """Split `BASE+ADAPTER` at the last `+` whose right side is an adapter folder."""
    if "+" not in text or resolve(text).exists():
        return None
    for i in range(len(text) - 1, 0, -1):
        if text[i] == "+" and is_adapter(right := resolve(text[i + 1 :])):
            return resolve(text[:i]), right
    return None


def _pattern(patterns: dict[str, Any], module: str) -> Any:
    """PEFT's per-module override: the first pattern matching the end of the module path."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return None


def _scaling(config: dict[str, Any], module: str, rank: int) -> float:
    """lora_alpha / r (or / sqrt(r) with use_rslora), honouring alpha_pattern."""
    alpha = _pattern(config.get("alpha_pattern") or {}, module)
    alpha = config.get("lora_alpha", 8) if alpha is None else alpha
    if not isinstance(alpha, int | float) or rank <= 0:
        raise InputError(
            f"Adapter lora_alpha {alpha!r} for {module} is not a number.",
            hint="fix adapter_config.json.",
        )
    return float(alpha) / (sqrt(rank) if config.get("use_rslora") else rank)


def _check_config(folder: Path, config: Any) -> dict[str, Any]:
    """Refuse configs this merge cannot reproduce, with the reason."""
    if not isinstance(config, dict):
        raise InputError(f"{folder / CONFIG} is not a JSON object.", hint="re-save the adapter.")
    kind = str(config.get("peft_type", "LORA")).upper()
    if kind != "LORA":
        raise InputError(
            f"Adapter {folder} is a {kind} adapter; only LoRA adapters can be merged here.",
            hint="merge it with PEFT (merge_and_unload), save the model, and audit that.",
        )
    for key, why in (
        ("use_dora", "DoRA rescales every merged column"),
        ("target_parameters", "LoRA on raw parameters (MoE experts) is not a module merge"),
        ("layer_replication", "layer replication changes the model's depth"),
    ):
        if config.get(key):
            raise InputError(
                f"Adapter {folder} sets {key} ({why}); companion cannot merge it yet.",
                hint="merge it with PEFT (merge_and_unload), save the model, and audit that.",
            )
    return config


def _weights(folder: Path) -> Path:
    """The adapter's weights file."""
    for name in WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise InputError(
        f"Adapter folder {folder} has {CONFIG} but no {' or '.join(WEIGHTS)}.",
        hint="copy the adapter's weights file next to its config.",
    )


def open_adapter(path: Path) -> Adapter:
    """Read an adapter folder's config and weights header (no tensor data yet)."""
    folder = path.parent if path.name == CONFIG else path
    config = _check_config(folder, _load_json(folder / CONFIG, "Adapter config"))
    file = _open_file(_weights(folder))
    try:
        modules, replacements = _parse(folder, config, file)
    except BaseException:
        file.close()
        raise
    return Adapter(folder, config, file, modules, replacements)


def _parse(
    folder: Path, config: dict[str, Any], file: TensorFile
) -> tuple[list[LoraModule], dict[str, str]]:
    """Group the adapter's tensors into LoRA modules and whole replacements."""
    factors: dict[str, dict[str, str]] = {}
    replacements: dict[str, str] = {}
    for name in sorted(file.tensors):
        bare = name.removeprefix(PREFIX)
        for marker, why in _REFUSED.items():
            if marker in bare:
                raise InputError(
                    f"Adapter {folder} holds {name}: {why}; companion cannot merge it yet.",
                    hint="merge it with PEFT (merge_and_unload), save the model, and audit that.",
                )
        if m := _LORA.match(bare):
            factors.setdefault(m["module"], {})[m["part"]] = name
        elif "lora_" in bare:
            raise InputError(
                f"Adapter {folder} holds {name}, which is no LoRA factor this merge knows.",
                hint="merge it with PEFT (merge_and_unload), save the model, and audit that.",
            )
        else:
            replacements[bare.replace(".base_layer.", ".")] = name
    modules = [_module(folder, config, file, mod, parts) for mod, parts in sorted(factors.items())]
    if not modules and not replacements:
        raise InputError(f"Adapter {folder} holds no tensors.", hint="check the adapter files.")
    return modules, replacements


def _module(
    folder: Path, config: dict[str, Any], file: TensorFile, module: str, parts: dict[str, str]
) -> LoraModule:
    """One module's factors, checked against each other (rank, 2-D)."""
    embedding = "lora_embedding_A" in parts or "lora_embedding_B" in parts
    a_key, b_key = (
        ("lora_embedding_A", "lora_embedding_B")
        if embedding
        else ("lora_A.weight", "lora_B.weight")
    )
    if a_key not in parts or b_key not in parts:
        raise InputError(
            f"Adapter {folder}: module {module} has only one of {a_key} and {b_key}.",
            hint="the adapter file is incomplete; re-save it.",
        )
    a, b = file.tensors[parts[a_key]].shape, file.tensors[parts[b_key]].shape
    if len(a) != 2 or len(b) != 2 or a[0] != b[1]:
        raise InputError(
            f"Adapter {folder}: module {module} has {a_key} {list(a)} and {b_key} {list(b)}, "
            "which do not multiply (B is out x r, A is r x in).",
            hint="the adapter file is malformed; re-save it.",
        )
    return LoraModule(
        module=module,
        target=module + ".weight",
        a=parts[a_key],
        b=parts[b_key],
        embedding=embedding,
        transposed=embedding or bool(config.get("fan_in_fan_out")),
        scaling=_scaling(config, module, a[0]),
        rank=a[0],
    )


def delta_shape(adapter: Adapter, m: LoraModule) -> tuple[int, int]:
    """The shape of the module's merged delta (and so of the base weight it must fit)."""
    a, b = adapter.file.tensors[m.a].shape, adapter.file.tensors[m.b].shape
    return (a[1], b[0]) if m.transposed else (b[0], a[1])


def _resolve(base: Checkpoint, name: str) -> str | None:
    """The base tensor for an adapter path: the same name, else the one name ending with it."""
    if name in base.tensors:
        return name
    found = [n for n in base.tensors if n.endswith("." + name) or name.endswith("." + n)]
    return found[0] if len(found) == 1 else None


def fit(adapter: Adapter, base: Checkpoint) -> Adapter:
    """The adapter with targets resolved in `base`; a clear error for any module that misfits."""
    modules = []
    for m in adapter.modules:
        target = _resolve(base, m.target)
        if target is None:
            raise InputError(
                f"Adapter module {m.module} has no weight in base {base.path} "
                f"(no tensor named {m.target}).",
                hint=f"the adapter was made for another model (its config names "
                f"{adapter.base_name}); audit it against the base it was trained on.",
            )
        have, want = base.tensors[target].info.shape, delta_shape(adapter, m)
        if tuple(have) != want:
            a, b = adapter.file.tensors[m.a].shape, adapter.file.tensors[m.b].shape
            layout = "in x out" if m.transposed else "out x in"
            raise InputError(
                f"Adapter module {m.module} does not fit base {base.path}: the base weight "
                f"{target} is {list(have)}, but the adapter's lora_B {list(b)} x lora_A "
                f"{list(a)} makes a {list(want)} ({layout}) delta.",
                hint=f"the adapter was trained on a base of other dimensions (its config names "
                f"{adapter.base_name}); audit it against that base.",
            )
        modules.append(LoraModule(**{**m.__dict__, "target": target}))
    replacements = {}
    for name, stored in adapter.replacements.items():
        replacements[_resolve(base, name) or name] = stored
    return Adapter(adapter.folder, adapter.config, adapter.file, modules, replacements)
