"""GGUF checkpoints in the audit: the real SmolLM2 Q4_1 against itself, an HF-layout
safetensors export, a Q8_0 re-quantization and an independent GGUF; reads checked against the
gguf package; hostile headers refused cleanly without large allocations."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path
from typing import Any

import gguf
import ml_dtypes
import numpy as np
import pytest
from helpers.gguf_bytes import gguf_file, gstr, kv, tensor_info
from helpers.gguf_files import (
    hf_export,
    hf_permute,
    norm_attn,
    smollm2_path,
    tensors,
    write_gguf,
)

from companion.audit.checkpoint import open_checkpoint
from companion.audit.gguf import GGUFFile
from companion.audit.safetensors import write_safetensors
from companion.audit.schemas import AuditResult
from companion.errors import InputError
from companion.toolbox import run_tool
from companion.tools import ToolContext

Q = gguf.GGMLQuantizationType


def audit(a: Path, b: Path, **kw: Any) -> AuditResult:
    """Run the registered audit tool on norm and attention roles."""
    args = {"a": str(a), "b": str(b), "roles": ["norm", "attn"], **kw}
    result = run_tool("audit.compare", args, ToolContext())
    assert isinstance(result, AuditResult)
    return result


@pytest.fixture(scope="module")
def real() -> Path:
    """The real GGUF."""
    return smollm2_path()


def test_reads_match_the_gguf_package_and_undo_the_rotary_permutation(real: Path) -> None:
    f = GGUFFile(real)
    try:
        ref = {n: v for n, v, _ in tensors(real) if n.startswith(("blk.3.", "token_embd"))}
        v = f.read("model.layers.3.self_attn.v_proj.weight").reshape(192, 576)
        assert np.array_equal(v, ref["blk.3.attn_v.weight"])
        q = f.read("model.layers.3.self_attn.q_proj.weight").reshape(576, 576)
        assert np.array_equal(hf_permute(q, 9), ref["blk.3.attn_q.weight"])
        assert not np.array_equal(q, ref["blk.3.attn_q.weight"])
        k = f.read("model.layers.3.self_attn.k_proj.weight").reshape(192, 576)
        assert np.array_equal(hf_permute(k, 3), ref["blk.3.attn_k.weight"])
        # an unaligned partial read (crosses blocks and heads) equals the slice of the whole
        assert np.array_equal(
            f.read("model.layers.3.self_attn.q_proj.weight", 40001, 7777),
            q.reshape(-1)[40001:47778],
        )
        emb = f.tensors["model.embed_tokens.weight"]
        assert emb.dtype == "Q8_0" and emb.shape == (49152, 576)
        assert np.array_equal(
            f.read(emb.name, 576 * 100, 576).reshape(576), ref["token_embd.weight"][100]
        )
    finally:
        f.close()


def test_gguf_against_itself_is_identical_and_derived(real: Path) -> None:
    r = audit(real, real)
    assert r.verdict == "derived", [x.statement for x in r.reasons]
    assert r.per_tensor and all(t.metrics.identical_frac == 1.0 for t in r.per_tensor)
    assert {t.dtype_a for t in r.per_tensor if t.role == "q"} == {"Q4_1"}
    assert r.manifest.inputs[0].path.endswith(".gguf") and r.manifest.inputs[0].sha256


def test_against_an_hf_layout_safetensors_export_is_derived(real: Path, tmp_path: Path) -> None:
    export = {k: v.astype(ml_dtypes.bfloat16) for k, v in hf_export(real).items()}
    st = tmp_path / "model.safetensors"
    write_safetensors(st, export)
    r = audit(real, st)
    assert r.verdict == "derived", [x.statement for x in r.reasons]
    q = [t for t in r.per_tensor if t.role == "q"]
    assert len(q) == 30 and all(t.dtype_a == "Q4_1" and t.dtype_b == "BF16" for t in q)
    # the layouts line up (without the un-permutation Pearson of Q would be near 0)
    assert min(t.metrics.pearson or 0 for t in q) > 0.99
    assert not r.unmatched


def test_against_a_q8_requantization_is_derived(real: Path, tmp_path: Path) -> None:
    items = [(n, v, Q.Q8_0 if v.ndim == 2 else Q.F32) for n, v, _ in norm_attn(real)]
    r = audit(real, write_gguf(tmp_path / "requant.gguf", items))
    assert r.verdict == "derived", [x.statement for x in r.reasons]
    q = [t for t in r.per_tensor if t.role == "q"]
    assert {t.dtype_b for t in q} == {"Q8_0"}
    assert all(0.99 < (t.metrics.pearson or 0) < 1.0 or t.metrics.identical_frac > 0 for t in q)


def test_against_an_independent_gguf_is_independent(real: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    items = []
    for n, v, _ in norm_attn(real):
        if v.ndim == 1:
            fresh = 1.0 + 0.05 * rng.standard_normal(v.shape)
        else:
            fresh = 0.02 * rng.standard_normal(v.shape)
        items.append((n, fresh.astype(np.float32), Q.Q8_0 if v.ndim == 2 else Q.F32))
    r = audit(real, write_gguf(tmp_path / "independent.gguf", items))
    assert r.verdict == "independent", [x.statement for x in r.reasons]


def test_stacked_experts_are_split_per_expert(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    exps = rng.standard_normal((4, 64, 32)).astype(np.float32)
    path = write_gguf(
        tmp_path / "moe.gguf",
        [
            ("blk.0.ffn_gate_exps.weight", exps, Q.Q8_0),
            ("blk.0.ffn_gate_inp.weight", exps[0, :4], Q.F32),
        ],
        arch="qwen3moe",
    )
    ck = open_checkpoint(path)
    try:
        names = sorted(ck.tensors)
        assert "model.layers.0.mlp.experts.3.gate_proj.weight" in names
        assert "model.layers.0.mlp.gate.weight" in names
        ref = ck.tensors["model.layers.0.mlp.experts.2.gate_proj.weight"]
        assert ref.info.shape == (64, 32)
        got = ref.file.read(ref.info.name).reshape(64, 32)
        want = gguf.quants.dequantize(gguf.quants.quantize(exps[2], Q.Q8_0), Q.Q8_0)
        assert np.array_equal(got, want)
    finally:
        ck.close()


# --- hostile headers -----------------------------------------------------------------------


ARCH = kv("general.architecture", 8, gstr("llama"))
GOOD = tensor_info("blk.0.attn_norm.weight", [16], 0, 0)
MOE, EXPERTS = kv("general.architecture", 8, gstr("qwen3moe")), "blk.0.ffn_gate_exps.weight"
HOSTILE = {
    "bad magic": (b"GGML" + gguf_file([ARCH], [GOOD])[4:], "magic"),
    "version 1": (gguf_file([ARCH], [GOOD], version=1), "version 1"),
    "tensor count beyond the file": (gguf_file([ARCH], [GOOD], n_t=2**40), "tensor count"),
    "metadata count beyond the file": (gguf_file([ARCH], [GOOD], n_kv=2**62), "metadata count"),
    "string length 2^63": (gguf_file([struct.pack("<Q", 2**63) + b"x"], [], n_kv=1), "bytes long"),
    "value string length 2^63": (
        gguf_file([kv("general.name", 8, struct.pack("<Q", 2**63))], []),
        "needs",
    ),
    "unknown value type": (
        gguf_file([kv("general.name", 77, b"\0" * 8)], [GOOD]),
        "unknown value type",
    ),
    "array count beyond the file": (
        gguf_file([kv("tok", 9, struct.pack("<IQ", 8, 2**60))], []),
        "claims",
    ),
    "unknown ggml type": (gguf_file([ARCH], [tensor_info("w", [16], 250, 0)]), "unknown ggml type"),
    "offset out of range": (gguf_file([ARCH], [tensor_info("w", [16], 0, 2**62)]), "spans bytes"),
    "unaligned offset": (gguf_file([ARCH], [tensor_info("w", [4], 0, 3)]), "alignment"),
    "dims beyond the file": (
        gguf_file([ARCH], [tensor_info("w", [2**40, 2**40], 0, 0)]),
        "do not fit",
    ),
    "dims not whole blocks": (gguf_file([ARCH], [tensor_info("w", [33], 8, 0)]), "do not fit"),
    "too many dims": (gguf_file([ARCH], [tensor_info("w", [1, 1, 1, 1, 1], 0, 0)]), "dimensions"),
    "overlapping tensors": (
        gguf_file([ARCH], [tensor_info("a", [8], 0, 0), tensor_info("b", [8], 0, 0)]),
        "overlaps",
    ),
    "truncated": (gguf_file([ARCH], [GOOD])[:40], "ends first"),
    # Each expert of a stacked tensor becomes a tensor of its own: one 60-byte tensor info
    # with dims [0, 1, 10^6] once opened as 10^6 tensors (650 MB, 6 s).
    "a million empty experts from a 4 KB file": (
        gguf_file([MOE], [tensor_info(EXPERTS, [0, 1, 10**6], 12, 0)], b"\0" * 4096),
        "experts",
    ),
    "a hundred thousand 4-byte experts": (
        gguf_file([MOE], [tensor_info(EXPERTS, [1, 1, 10**5], 0, 0)], b"\0" * 400_000),
        "experts",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_gguf_is_a_clean_error_without_large_allocations(case: str, tmp_path: Path) -> None:
    blob, words = HOSTILE[case]
    path = tmp_path / "hostile.gguf"
    path.write_bytes(blob)
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as err:
            open_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert words in err.value.message, err.value.message
    assert err.value.hint
    assert peak < 4 << 20  # nothing sized by the file's claims was allocated


def test_the_well_formed_control_file_opens(tmp_path: Path) -> None:
    path = tmp_path / "ok.gguf"
    path.write_bytes(gguf_file([ARCH], [GOOD]))
    ck = open_checkpoint(path)
    try:
        assert list(ck.tensors) == ["model.layers.0.input_layernorm.weight"]
        assert ck.tensors["model.layers.0.input_layernorm.weight"].file.read(
            "model.layers.0.input_layernorm.weight"
        ).shape == (16,)
    finally:
        ck.close()


def test_f16_gguf_with_llama_cpp_rotary_order_matches_its_source(tmp_path: Path) -> None:
    # An F16 GGUF's Q/K rows come out re-ordered as float32: the fused C kernel must not read
    # those chunks as F16 (it did, and Q/K of a file against its own source scored r ~ 0).
    from companion.audit import synth
    from companion.audit.gguf_names import hf_name

    heads = 4
    spec = synth.Spec(vocab=512, hidden=256, layers=2, heads=heads, intermediate=512)
    w = synth.base(spec, 0)
    src = synth.save(tmp_path / "a", w, spec)
    subs = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
    names = ["token_embd.weight", "output_norm.weight", "output.weight"] + [
        f"blk.{i}.{sub}.weight"
        for i in range(spec.layers)
        for sub in (*subs, "attn_norm", "ffn_norm")
    ]
    items = []
    for g in names:
        if (v := w.get(hf_name(g, "llama"))) is not None:
            rotary = g.endswith(("attn_q.weight", "attn_k.weight"))
            items.append((g, hf_permute(v, heads) if rotary else v, Q.F16))
    write_gguf(tmp_path / "model.gguf", items, heads=heads, kv_heads=heads)
    r = audit(src, tmp_path / "model.gguf")
    qk = [t for t in r.per_tensor if t.name_a.endswith(("q_proj.weight", "k_proj.weight"))]
    assert len(qk) == 2 * spec.layers and all(t.dtype_b == "F16" for t in qk)
    assert all((t.metrics.pearson or 0.0) > 0.999 for t in qk), [t.metrics.pearson for t in qk]
