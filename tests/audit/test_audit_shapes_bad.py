"""Bad input around changed shapes: a clear result or error naming the next step, never a trace."""

from __future__ import annotations

import struct
from pathlib import Path

import ml_dtypes
import numpy as np
from helpers.audit_checkpoints import audit

from companion.audit import synth
from companion.audit.engine import AuditSetup, run_audit
from companion.audit.schemas import AuditInput
from companion.jobs import Job

SPEC = synth.Spec()


def test_mixed_dtypes_per_tensor_are_compared_and_said(tmp_path: Path) -> None:
    w = synth.base(SPEC, 0)
    kinds = [np.float16, ml_dtypes.bfloat16, np.float32]
    ft = synth.finetune(w, seed=1, update=0.1, noise=0.1)
    mixed = {n: t.astype(kinds[i % 3]) for i, (n, t) in enumerate(ft.items())}
    r = audit(synth.save(tmp_path / "a", w, SPEC), synth.save(tmp_path / "b", mixed, SPEC))
    assert r.verdict == "derived"
    assert {t.dtype_b for t in r.per_tensor} == {"F16", "BF16", "F32"}
    assert all((t.metrics.pearson or 0) > 0.9 for t in r.per_tensor if t.group != "norm")
    said = [x for x in r.reasons if x.kind == "mixed_dtypes"]
    assert len(said) == 1 and "B stores its tensors in 3 dtypes" in said[0].statement


def _million(folder: Path, count: int) -> Path:
    """A safetensors file with `count` one-element F32 tensors (header written directly)."""
    entry = '"model.layers.%d.w": {"dtype": "F32", "shape": [1], "data_offsets": [%d, %d]}'
    raw = ("{" + ", ".join(entry % (i, 4 * i, 4 * i + 4) for i in range(count)) + "}").encode()
    raw += b" " * (-len(raw) % 8)
    folder.mkdir()
    data = np.arange(count, dtype=np.float32).tobytes()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return folder


def test_a_million_tiny_tensors_are_capped_and_the_cap_is_said(tmp_path: Path) -> None:
    a = synth.save(tmp_path / "a", synth.base(SPEC, 0), SPEC)
    b = _million(tmp_path / "b", 1_000_000)
    setup = AuditSetup(1, None, "audit.compare", max_tensors=2000)  # what this test reads
    result = run_audit(AuditInput(a=str(a), b=str(b)), (a, b, None), Job(), setup)
    assert result.verdict == "inconclusive"
    cap = next(x for x in result.reasons if x.kind == "tensor_cap")
    assert "998,000 tensors past the first 2,000" in cap.statement and "Next step" in cap.statement
    assert len(result.unmatched) <= 1001


def test_attention_that_fits_no_head_layout_is_not_comparable_with_a_next_step(
    tmp_path: Path,
) -> None:
    w = synth.base(SPEC, 0)
    b = dict(w)
    keep = SPEC.head_dim * 3 + 2  # not a whole number of heads: no head alignment fits
    for n, t in w.items():
        if n.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")):
            b[n] = np.ascontiguousarray(t[:keep])
        elif n.endswith("o_proj.weight"):
            b[n] = np.ascontiguousarray(t[:, :keep])
    r = audit(synth.save(tmp_path / "a", w, SPEC), synth.save(tmp_path / "b", b, SPEC))
    assert r.verdict == "derived"  # the rest kept its shape and matches
    attn = [x for x in r.reasons if x.kind == "not_comparable" and x.role == "attn"]
    assert len(attn) == 1 and "16 tensors changed shape" in attn[0].statement
    assert "Next step: heads pruned" in attn[0].statement


def test_shapes_that_fit_no_alignment_are_inconclusive_per_role(tmp_path: Path) -> None:
    w = synth.base(SPEC, 0)
    rng = np.random.default_rng(3)
    odd = {  # every tensor reshaped, no embedding to align the hidden dims on
        n: rng.standard_normal([s + 3 for s in t.shape]).astype(np.float32)
        for n, t in w.items()
        if "embed_tokens" not in n
    }
    r = audit(synth.save(tmp_path / "a", w, SPEC), synth.save(tmp_path / "b", odd, SPEC))
    assert r.verdict == "inconclusive"
    roles = {x.role for x in r.reasons if x.kind == "not_comparable"}
    assert {"attn", "mlp", "norm", "lm_head"} <= roles
    assert r.reasons[0].kind == "degenerate"  # the decisive reason first: nothing comparable
