"""Memory: the alignment streams tensors in blocks; its peak never holds a whole matrix."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from companion.audit import aligned, heads, hidden, matching, sketch, synth
from companion.audit.checkpoint import open_checkpoint
from companion.audit.pairing import index_side
from companion.jobs import Job

SPEC = synth.Spec(vocab=512, hidden=512, layers=1, heads=8, intermediate=2048)
CAP = 16 << 20  # bytes of Python-traced memory the test allows the alignment


def _write(root: Path) -> tuple[Path, Path]:
    """A (bf16) and B = A with its hidden dims permuted plus noise."""
    w = synth.base(SPEC, seed=0)
    b = synth.hidden_permuted(synth.finetune(w, seed=1, update=0.1, noise=0.1), seed=5)
    bf = {k: v.astype(ml_dtypes.bfloat16) for k, v in w.items()}
    return synth.save(root / "a", bf, SPEC), synth.save(root / "b", synth.cast(b), SPEC)


def test_alignment_peak_memory_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Scale the streaming budgets down with the model, so the test model stands for one
    # whose matrices are far larger than the blocks (the defaults: 4 MB blocks, 8 MB kept).
    monkeypatch.setattr(sketch, "CHUNK", 1 << 16)
    small = lambda width, wanted: max(2, (1 << 16) // width)  # noqa: E731
    monkeypatch.setattr(aligned, "keep_budget", small)
    monkeypatch.setattr(heads, "keep_budget", small)
    monkeypatch.setattr(aligned, "WHOLE", 1 << 16)
    monkeypatch.setattr(sketch, "WHOLE", 1 << 16)
    monkeypatch.setattr(matching, "MAX_SIM", 1 << 18)
    a_path, b_path = _write(tmp_path)
    ca, cb = open_checkpoint(a_path), open_checkpoint(b_path)
    try:
        a, b = index_side(ca, set()), index_side(cb, set())
        layer_f64 = sum(8 * ca.tensors[n].info.numel for n in ca.tensors if ".layers.0." in n)
        assert layer_f64 > 2 * CAP  # a whole-float64 load of one layer exceeds the cap twice
        # Once untraced first: lazy imports (scipy's assignment solver) are not the algorithm.
        aligned.compare_aligned(a, b, {0: 0}, [0], 0, Job())
        tracemalloc.start()
        try:
            ev = aligned.compare_aligned(a, b, {0: 0}, [0], 0, Job())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        ca.close()
        cb.close()
    assert peak < CAP, (
        f"peak {peak / 2**20:.1f} MB (one layer whole in float64: {layer_f64 >> 20} MB)"
    )
    assert ev is not None and ev.related and ev.hidden is not None
    assert ev.hidden.one_to_one == SPEC.hidden
    assert any("no delta rank" in s for s in ev.skipped)  # over the (lowered) WHOLE cap: said


def test_scan_matches_whole_tensor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sketch, "CHUNK", 700)  # blocks of a few rows, not a divisor
    rng = np.random.default_rng(0)
    w = rng.standard_normal((97, 64)).astype(np.float32)
    (tmp_path / "m").mkdir()
    from companion.audit.safetensors import write_safetensors

    write_safetensors(tmp_path / "m/model.safetensors", {"w": w})
    ck = open_checkpoint(tmp_path / "m")
    try:
        r, left = rng.standard_normal((64, 5)), rng.standard_normal((97, 3))
        s = sketch.scan(ck.tensors["w"], "w", right=r, left=left, keep_cols=7)
    finally:
        ck.close()
    w64 = w.astype(np.float64)
    assert np.allclose(s.col_sq, (w64**2).sum(axis=0)) and np.allclose(s.row_sq, (w64**2).sum(1))
    assert s.right is not None and np.allclose(s.right, w64 @ r, atol=1e-4)
    assert s.left is not None and np.allclose(s.left, left.T @ w64)
    assert s.cols is not None and np.array_equal(s.cols, w[:, :7]) and s.finite
    assert hidden.SKETCH > 0
