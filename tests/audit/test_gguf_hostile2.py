"""Hostile GGUF files beyond the header checks of test_gguf.py: what a well-formed header
can still claim (token strings, transposed or 3-D matrices), through the audit, arch and tokenizer
entry points."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from helpers.gguf_bytes import gguf_file, gstr, kv, tensor_info
from helpers.gguf_files import write_gguf

from companion.audit import synth
from companion.audit.gguf_names import hf_name
from companion.fingerprint.engine import fingerprint_checkpoint
from companion.jobs import Job
from companion.toolbox import run_tool
from companion.tools import ToolContext

Array = np.ndarray[Any, Any]


F32 = 0


def _tokens(path: Path, tokens: list[bytes]) -> Path:
    """A GGUF holding only a tokenizer.ggml.tokens array of raw byte strings."""
    array = struct.pack("<IQ", 8, len(tokens)) + b"".join(gstr(t) for t in tokens)
    kvs = [kv("general.architecture", 8, gstr("rwkv6")), kv("tokenizer.ggml.tokens", 9, array)]
    path.write_bytes(gguf_file(kvs, [tensor_info("output_norm.weight", [16], F32, 0)]))
    return path


def test_tokens_that_are_not_utf8_stay_distinct(tmp_path: Path) -> None:
    # RWKV's world vocabulary stores raw bytes. Before, every invalid byte string decoded to
    # U+FFFD: three byte tokens became one string, and two vocabularies with those tokens in
    # swapped IDs compared as "same" (3 token strings for 5 tokens).
    from companion.architecture.tokenizer import compare_vocabs, load_vocab

    a = load_vocab(_tokens(tmp_path / "a.gguf", [b"\xff", b"\xfe", b"\x80", b"a", b"b"]))
    b = load_vocab(_tokens(tmp_path / "b.gguf", [b"\x80", b"\xfe", b"\xff", b"a", b"b"]))
    assert len(a.tokens) == len(b.tokens) == 5
    cmp = compare_vocabs(a, b)
    assert cmp.relation != "same" and cmp.same_id_fraction == pytest.approx(3 / 5)


def _llama(tmp_path: Path, relayout: Callable[[Array], Array]) -> tuple[Path, Path]:
    """A synthetic llama's safetensors folder and a GGUF of it with every matrix relaid out."""
    spec = synth.Spec(vocab=512, hidden=256, layers=1, heads=4, intermediate=512)
    w = synth.base(spec, 0)
    src = synth.save(tmp_path / "a", w, spec)
    subs = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
    names = ["token_embd.weight", "output_norm.weight", "blk.0.attn_norm.weight"]
    names += ["blk.0.ffn_norm.weight"] + [f"blk.0.{sub}.weight" for sub in subs]
    items = []
    for g in names:
        if (v := w.get(hf_name(g, "llama"))) is not None:
            v = np.asarray(v, dtype=np.float32)
            v = np.ascontiguousarray(relayout(v)) if "blk" in g and v.ndim == 2 else v
            items.append((g, v, gguf.GGMLQuantizationType.F32))
    return src, write_gguf(tmp_path / "b.gguf", items, heads=4, kv_heads=4)


def _transposed(v: Array) -> Array:
    """ne0 = rows: the dims listed the other way round."""
    return v.T


def _three_d(v: Array) -> Array:
    """A matrix split into 4 stacked row blocks."""
    return v.reshape(4, -1, v.shape[-1])


def test_matrices_stored_transposed_are_an_audit_not_a_crash(tmp_path: Path) -> None:
    # A GGUF whose dims list every matrix the other way round (ne0 = rows): up [256, 512]
    # and down [512, 256] still looked like a consistent MLP, and the unit matching
    # multiplied 512-wide rows by the 256-wide norm gain (exit 70, a numpy broadcast error).
    src, path = _llama(tmp_path, _transposed)
    result = run_tool("audit.compare", {"a": str(src), "b": str(path)}, ToolContext())
    assert result.model_dump()["verdict"]


@pytest.mark.parametrize("relayout", [_transposed, _three_d])
def test_fingerprint_skips_matrices_that_do_not_fit_the_width(
    relayout: Callable[[Array], Array], tmp_path: Path
) -> None:
    # Before, q/k/v/up/gate were multiplied by the norm gain whatever their shape: transposed
    # or 3-D attention matrices made `fingerprint` exit 70 (numpy broadcast / matmul errors).
    _, path = _llama(tmp_path, relayout)
    fp = fingerprint_checkpoint(path, Job())
    assert fp.status == "ok" and fp.hidden == 256


def _numbers(path: Path, key: str, values: Array) -> Path:
    """A llama GGUF whose metadata `key` is an array of float32 or uint32 numbers."""
    etype = 6 if values.dtype == np.float32 else 4
    array = (
        struct.pack("<IQ", etype, len(values))
        + values.astype(values.dtype.newbyteorder("<")).tobytes()
    )
    kvs = [kv("general.architecture", 8, gstr("llama")), kv(key, 9, array)]
    path.write_bytes(gguf_file(kvs, [tensor_info("output_norm.weight", [16], F32, 0)]))
    return path


def test_a_long_numeric_array_costs_its_bytes_not_python_objects(tmp_path: Path) -> None:
    # Before, every numeric array became a Python list: 16 MB of float32 token scores took
    # 512 MB (32 bytes per element). Now a long one stays a read-only array over one copy.
    import tracemalloc

    from companion.audit.gguf_format import read_header

    values = np.arange(1 << 22, dtype=np.float32)
    path = _numbers(tmp_path / "m.gguf", "tokenizer.ggml.scores", values)
    tracemalloc.start()
    try:
        scores = read_header(path).metadata["tokenizer.ggml.scores"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert float(scores[12345]) == 12345.0 and len(scores) == 1 << 22
    assert peak < 3 * (16 << 20), peak  # the file's 16 MB, copied once (the list took 32x)


def test_a_long_per_layer_array_gives_the_first_layer(tmp_path: Path) -> None:
    # Per-layer values longer than a list would be arrays: the config still takes the first.
    from companion.architecture.gguf_config import gguf_config

    heads = np.full(5000, 8, dtype=np.uint32)
    cfg = gguf_config(_numbers(tmp_path / "m.gguf", "llama.attention.head_count", heads))
    assert cfg["num_attention_heads"] == 8 and type(cfg["num_attention_heads"]) is int
