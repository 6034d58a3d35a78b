"""`arch` and `tokenizer compare` on a real GGUF (SmolLM2-135M-Instruct Q4_1)."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest
from helpers.gguf_files import smollm2_path

from companion.architecture.spec import spec_from_path
from companion.architecture.tokenizer import compare_vocabs, load_vocab
from companion.errors import InputError
from companion.toolbox import run_tool
from companion.tools import ToolContext


def test_arch_describe_reads_gguf_metadata() -> None:
    spec = spec_from_path(smollm2_path())
    assert (spec.model_type, spec.num_layers, spec.hidden_size) == ("llama", 30, 576)
    assert (spec.num_heads, spec.num_kv_heads, spec.intermediate_size) == (9, 3, 1536)
    assert spec.vocab_size == 49152 and spec.tie_word_embeddings


def test_arch_params_on_gguf_match_the_published_count() -> None:
    result = run_tool("arch.params", {"path": str(smollm2_path())}, ToolContext())
    total = result.model_dump()["total"]
    assert 134_000_000 < total < 135_000_000  # SmolLM2-135M: 134.5 M with tied embeddings


def test_tokenizer_compare_reads_gguf_arrays(tmp_path: Path) -> None:
    reader = gguf.GGUFReader(smollm2_path())
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = reader.fields["tokenizer.ggml.merges"].contents()
    tj = {"model": {"type": "BPE", "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(tj))
    va, vb = load_vocab(smollm2_path()), load_vocab(tmp_path / "tokenizer.json")
    assert va.size == 49152 and len(va.merges) == len(merges)
    cmp = compare_vocabs(va, vb)
    assert cmp.relation == "same" and cmp.same_id_fraction == 1.0


def test_hostile_gguf_is_a_clean_arch_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (2**40).to_bytes(8, "little") * 2)
    with pytest.raises(InputError, match="tensor count"):
        spec_from_path(bad)
