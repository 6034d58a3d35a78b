"""`ArchSpec`: a normalised architecture built from a Hugging Face config.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from companion.architecture.families import FAMILIES, apply_family
from companion.architecture.keydocs import KEY_DOCS
from companion.architecture.reader import Reader
from companion.errors import InputError

MAX_CONFIG_BYTES = 16 * 1024 * 1024


class ArchSpec(BaseModel):
    """A normalised transformer architecture; fields absent from the config stay None."""

    family: str = Field(description="Normalised family (the model_type, or 'unknown').")
    model_type: str | None = None
    known_family: bool = False
    architectures: list[str] = Field(default_factory=list)
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    head_dim_derived: bool = False
    intermediate_size: int | None = None
    vocab_size: int | None = None
    max_position_embeddings: int | None = None
    tie_word_embeddings: bool = False
    attention: Literal["mha", "gqa", "mqa", "mla", "unknown"] = "unknown"
    mlp_gated: bool = True
    activation: str | None = None
    norm: Literal["rmsnorm", "layernorm", "layernorm_nonparam"] = "rmsnorm"
    norms_per_layer: int = 2
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    qk_norm: Literal["none", "head", "full"] = "none"
    position: Literal["rope", "learned"] = "rope"
    rope_theta: float | None = None
    partial_rotary_factor: float = 1.0
    rope_scaling_type: str | None = None
    sliding_window: int | None = None
    layer_types: dict[str, int] = Field(default_factory=dict)
    attention_sinks: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int | None = None
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int | None = None
    shared_expert_gate: bool = False
    first_k_dense: int = 0
    moe_layer_freq: int = 1
    mlp_only_layers: list[int] = Field(default_factory=list)
    router_bias: bool = False
    expert_bias: bool = False
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    mtp_layers: int = 0
    type_vocab_size: int = 0
    pooler: bool = False
    notes: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    unknown_fields: list[str] = Field(default_factory=list)
    source: str | None = None

    @property
    def is_moe(self) -> bool:
        """Whether the model routes tokens to experts."""
        return self.num_experts > 0

    def is_moe_layer(self, i: int) -> bool:
        """Whether layer `i` uses the MoE block (rather than a dense MLP)."""
        if not self.is_moe or i < self.first_k_dense or i in self.mlp_only_layers:
            return False
        return (
            (i - self.first_k_dense) % max(1, self.moe_layer_freq) == 0
            if self.family
            in (
                "deepseek_v3",
                "deepseek_v2",
            )
            else (i + 1) % max(1, self.moe_layer_freq) == 0
        )

    def moe_layer_count(self) -> int:
        """How many layers are MoE."""
        return sum(self.is_moe_layer(i) for i in range(self.num_layers or 0))

    def summary(self) -> str:
        """One line: family, depth, width, heads, experts."""
        parts = [self.family]
        if self.num_layers:
            parts.append(f"{self.num_layers} layers")
        if self.hidden_size:
            parts.append(f"d={self.hidden_size}")
        if self.num_heads:
            kv = f"/{self.num_kv_heads} kv" if self.num_kv_heads != self.num_heads else ""
            parts.append(f"{self.num_heads} heads{kv}")
        if self.is_moe:
            shared = f" + {self.num_shared_experts} shared" if self.num_shared_experts else ""
            parts.append(f"{self.experts_per_token}/{self.num_experts} experts{shared}")
        if self.vocab_size:
            parts.append(f"vocab {self.vocab_size:,}")
        return ", ".join(parts)


def _unwrap(cfg: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Use the language model's `text_config` of a multimodal config when it holds the sizes."""
    text = cfg.get("text_config")
    if isinstance(text, dict) and not any(k in cfg for k in ("hidden_size", "n_embd")):
        notes.append("Read the language model from text_config; the vision tower is not counted.")
        merged = {k: v for k, v in cfg.items() if k not in ("text_config", "vision_config")}
        merged.update(text)
        if isinstance(cfg.get("model_type"), str) and "model_type" in text:
            merged["model_type"] = text["model_type"]
        return merged
    return cfg


def build_spec(cfg: object, source: str | None = None) -> ArchSpec:
    """Normalise a parsed config; never raises for a dict, notes what it could not read."""
    if not isinstance(cfg, dict):
        raise InputError(
            f"A model config must be a JSON object, got {type(cfg).__name__}.",
            hint="open the model's config.json (a {...} object with model_type, hidden_size ...).",
        )
    notes: list[str] = []
    cfg = _unwrap(cfg, notes)
    r = Reader(cfg)
    model_type = r.text("model_type")
    family = model_type.removesuffix("_text") if model_type else None
    known = family in FAMILIES
    spec = ArchSpec(
        family=family if known and family else (model_type or "unknown"),
        model_type=model_type,
        known_family=known,
        source=source,
    )
    archs = r.array("architectures") or []
    spec.architectures = [a for a in archs if isinstance(a, str)][:8]
    apply_family(spec, r, family if known else None)
    spec.notes = notes + r.notes + spec.notes
    if not known:
        spec.notes.insert(
            0,
            f"Unknown model_type {model_type!r}: read generically (llama-like assumptions)."
            if model_type
            else "No model_type: read generically (llama-like assumptions).",
        )
    essentials = {
        "hidden_size": spec.hidden_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "vocab_size": spec.vocab_size,
    }
    spec.missing = [k for k, v in essentials.items() if v is None]
    if spec.intermediate_size is None and not spec.is_moe:
        spec.missing.append("intermediate_size")
    spec.unknown_fields = sorted(k for k in cfg if k not in r.used and k not in KEY_DOCS)[:200]
    return spec


def read_config_text(path: Path) -> str:
    """Read a config file's text with a size guard."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(
            f"Cannot read {path}: {exc.strerror or exc}.", hint="check the path exists."
        ) from None
    if size > MAX_CONFIG_BYTES:
        raise InputError(
            f"{path} is {size:,} bytes; a model config is at most {MAX_CONFIG_BYTES:,}.",
            hint="pass the model's config.json, not a weights or tokenizer file.",
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"Cannot read {path} as UTF-8 text: {exc}.", hint="pass a config.json text file."
        ) from None


def resolve_config_path(path: Path) -> Path:
    """Accept a config file or a folder holding config.json."""
    if path.is_dir():
        cand = path / "config.json"
        if not cand.is_file():
            raise InputError(
                f"{path} is a folder without config.json.",
                hint="pass the config.json file or the model folder that holds it.",
            )
        return cand
    if not path.exists():
        raise InputError(f"{path} does not exist.", hint="pass an existing config.json path.")
    return path


def load_config(path: Path) -> dict[str, Any]:
    """Load a config.json (JSON or JSONC), or a .gguf's metadata, as a dict."""
    from companion.architecture.jsonc import parse, to_python

    if path.suffix == ".gguf":  # llama.cpp metadata mapped onto config.json keys
        from companion.architecture.gguf_config import gguf_config

        return gguf_config(path)
    text = read_config_text(path)
    too_deep = False
    try:
        data = json.loads(text)
    except RecursionError:
        data, too_deep = None, True
    except ValueError:
        parsed = parse(text)
        if parsed.root is None or parsed.root.kind != "object" or parsed.errors:
            first = parsed.errors[0] if parsed.errors else None
            where = ""
            if first is not None:
                line, col = parsed.position(first.start)
                where = f" at line {line + 1}, column {col + 1}: {first.message}"
            raise InputError(
                f"{path} is not valid JSON{where}",
                hint="fix the syntax (comments and trailing commas are fine).",
            ) from None
        data = to_python(parsed.root)
    if too_deep:
        raise InputError(
            f"{path} is nested too deeply to be a model config.", hint="pass a plain config.json."
        )
    if not isinstance(data, dict):
        raise InputError(
            f"{path} holds a JSON {type(data).__name__}, not an object.",
            hint="a model config is a {...} object with model_type, hidden_size ...",
        )
    return data


def spec_from_path(path: Path) -> ArchSpec:
    """Build the spec of a config.json path (or of the folder that holds one)."""
    cfg_path = resolve_config_path(path)
    return build_spec(load_config(cfg_path), source=str(cfg_path))
