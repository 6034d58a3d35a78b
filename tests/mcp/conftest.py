"""Fixtures for the MCP tests: a generated workspace and a private COMPANION_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.archfiles import bpe_tokenizer, byte_tokens, write_json
from helpers.editors import LLAMA_CONFIG, make_workspace


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The server's COMPANION_HOME (its audit store lives there)."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """Config, training log, two checkpoints, a second config and two tokenizers."""
    root = make_workspace(tmp_path / "ws")
    write_json(root / "other" / "config.json", {**LLAMA_CONFIG, "num_hidden_layers": 40})
    tokens = byte_tokens(300)
    write_json(root / "tok_a.json", bpe_tokenizer(tokens, ["t 1", "t 2"]))
    write_json(root / "tok_b.json", bpe_tokenizer(tokens + byte_tokens(20, "x"), ["t 1"]))
    (root / "notes.json").write_text(json.dumps({"note": "not a model"}))
    return root
