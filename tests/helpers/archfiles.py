"""Generators for architecture tests: small configs (typed-in facts) and tokenizer files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "configs"


def write_json(path: Path, data: Any) -> Path:
    """Write JSON and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def bpe_tokenizer(
    tokens: list[str], merges: list[str], added: dict[str, int] | None = None
) -> dict[str, Any]:
    """A minimal HF tokenizers-format BPE tokenizer.json (IDs = list order)."""
    return {
        "version": "1.0",
        "added_tokens": [
            {"id": i, "content": t, "special": True} for t, i in (added or {}).items()
        ],
        "model": {
            "type": "BPE",
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": merges,
        },
    }


def byte_tokens(n: int, prefix: str = "t") -> list[str]:
    """n distinct token strings."""
    return [f"{prefix}{i}" for i in range(n)]
