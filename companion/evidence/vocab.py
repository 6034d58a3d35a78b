"""The vocabulary size V behind ln V: from the user, a config/tokenizer file, or the log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from companion import files
from companion.errors import InputError

MAX_TOKENIZER_BYTES = 256 << 20


@dataclass
class Vocab:
    """A vocabulary size and where it came from."""

    size: int
    source: str
    file: Path | None = None


def _load(path: Path) -> Any:
    """JSON content of a config/tokenizer file, as InputError when unusable."""
    raw = files.read_bytes(path, MAX_TOKENIZER_BYTES, "Config")
    if raw.startswith(b"version https://git-lfs"):
        raise InputError(f"{path} is a Git LFS pointer.", hint="run `git lfs pull`.")
    try:
        return json.loads(raw.removeprefix(b"\xef\xbb\xbf"))
    except (ValueError, RecursionError) as exc:
        raise InputError(
            f"{path} is not valid JSON ({exc}).", hint="pass a valid config.json."
        ) from None


def _config_vocab(data: Any) -> int | None:
    """vocab_size (or padded_vocab_size / text_config.vocab_size / n_vocab) of a config."""
    if not isinstance(data, dict):
        return None
    for key in ("vocab_size", "padded_vocab_size", "n_vocab", "vocab"):
        v = data.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 1:
            return v
    for nested in ("text_config", "language_config", "llm_config"):
        if (v2 := _config_vocab(data.get(nested))) is not None:
            return v2
    return None


def _tokenizer_vocab(data: Any) -> int | None:
    """Highest token id + 1 over a tokenizer.json's model vocab and added tokens."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        return None
    vocab = data["model"].get("vocab")
    top = -1
    if isinstance(vocab, dict):
        ids = [v for v in vocab.values() if isinstance(v, int)]
        top = max(ids, default=-1)
    elif isinstance(vocab, list):
        top = len(vocab) - 1
    for tok in data.get("added_tokens") or []:
        if isinstance(tok, dict) and isinstance(tok.get("id"), int):
            top = max(top, tok["id"])
    return top + 1 if top >= 1 else None


def vocab_from_file(path: Path) -> Vocab:
    """Read V from a config.json or tokenizer.json the user named."""
    data = _load(path)
    size = _config_vocab(data)
    kind = "config"
    if size is None:
        size, kind = _tokenizer_vocab(data), "tokenizer"
    if size is None:
        raise InputError(
            f"{path} has no vocab_size (config) or model.vocab (tokenizer).",
            hint="pass the model's config.json or tokenizer.json, or --vocab-size N.",
        )
    return Vocab(size, f"{path.name} ({kind})", path)


_WHERE = ("beside the log", "one folder above the log", "two folders above the log")


def find_beside(log_path: Path, levels: int = 2) -> Vocab | None:
    """A config.json or tokenizer.json beside the log or up to `levels` folders above it.

    Only regular files the current file access allows are read (a confined run never looks
    outside the workspace); the source names the file and how far up it was found.
    """
    start = log_path if log_path.is_dir() else log_path.parent
    for depth, folder in enumerate((start, start.parent, start.parent.parent)[: levels + 1]):
        for name in ("config.json", "tokenizer.json"):
            candidate = folder / name
            if files.is_regular(candidate):
                try:
                    found = vocab_from_file(candidate)
                except InputError:
                    continue
                found.source = f"{candidate} ({_WHERE[depth]})"
                return found
    return None
