"""`ArchSpec`: a normalised architecture built from a Hugging Face config.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from companion import files
from companion.architecture.archspec import ArchSpec
from companion.architecture.families import FAMILIES, apply_family
from companion.architecture.keydocs import KEY_DOCS
from companion.architecture.reader import Reader
from companion.convert import parser
from companion.errors import InputError

MAX_CONFIG_BYTES = 16 * 1024 * 1024
__all__ = [
    "MAX_CONFIG_BYTES",
    "ArchSpec",
    "build_spec",
    "load_config",
    "read_config_text",
    "resolve_config_path",
    "spec_from_path",
]


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
    """Read a config file's text (a regular file, size-capped, inside any confinement)."""
    return files.read_text(path, MAX_CONFIG_BYTES, "Config")


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


@parser("The config", "pass a plain model config.json.")
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
