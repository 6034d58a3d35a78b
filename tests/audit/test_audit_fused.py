"""The C kernel (`_fused.c`) against the numpy path and against float64 references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from companion.audit import kernel
from companion.audit.checkpoint import open_checkpoint
from companion.audit.kernel import stream_pair
from companion.audit.metrics import PairAccumulator, StreamPlan
from companion.audit.safetensors import write_safetensors

Array = np.ndarray[Any, Any]
_NONE = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))


def _stream(tmp: Path, a: Array, b: Array, gains: bool, chunk: int) -> PairAccumulator:
    """Stream one pair written to real safetensors files."""
    write_safetensors(tmp / "a.safetensors", {"w": a})
    write_safetensors(tmp / "b.safetensors", {"w": b})
    ca, cb = open_checkpoint(tmp / "a.safetensors"), open_checkpoint(tmp / "b.safetensors")
    try:
        cols = a.shape[-1]
        rng = np.random.default_rng(7)
        plan = StreamPlan(
            chunk=chunk,
            gain_a=1 + 0.1 * rng.standard_normal(cols) if gains else None,
            gain_b=1 + 0.1 * rng.standard_normal(cols) if gains else None,
        )
        acc, _, _ = stream_pair(ca.tensors["w"], cb.tensors["w"], plan, _NONE, lambda n: None)
        return acc
    finally:
        ca.close()
        cb.close()


def _fields(acc: PairAccumulator) -> dict[str, float]:
    """Every figure the streamed pass produces, unshifted."""
    m, f = acc.moments, acc.folded
    return {
        "cosine": m.cosine() or 0.0,
        "pearson": m.pearson() or 0.0,
        "mean_a": m.mean_std()[0] or 0.0,
        "std_b": m.mean_std()[3] or 0.0,
        "sdd": acc.sdd,
        "max_abs": acc.max_abs,
        "identical": acc.identical,
        "sign_agree": acc.sign_agree,
        "nonfinite_a": acc.nonfinite_a,
        "folded_pearson": f.pearson() or 0.0,
        "folded_n": f.n,
    }


def _pair(kind_a: Any, kind_b: Any, shape: tuple[int, ...], near_one: bool) -> tuple[Array, Array]:
    """A base and a noisy derivative (with some equal entries and signed zeros)."""
    rng = np.random.default_rng(list(shape))
    a = rng.standard_normal(shape).astype(np.float32) * 0.02 + (1.0 if near_one else 0.0)
    b = a + rng.standard_normal(shape).astype(np.float32) * 0.005
    flat_b = b.reshape(-1)
    flat_b[::7] = a.reshape(-1)[::7]
    a.reshape(-1)[3], flat_b[3] = 0.0, -0.0
    return a.astype(kind_a), b.astype(kind_b)


CASES = [
    (ml_dtypes.bfloat16, ml_dtypes.bfloat16, (37, 1031), False, True),
    (np.float32, ml_dtypes.bfloat16, (64, 96), False, True),
    (np.float16, np.float16, (5003,), True, False),
    (np.float16, np.float32, (9, 13), False, False),
    (ml_dtypes.bfloat16, ml_dtypes.bfloat16, (4099,), True, False),
]


@pytest.mark.parametrize(("kind_a", "kind_b", "shape", "near_one", "gains"), CASES)
def test_fused_matches_numpy_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind_a: Any,
    kind_b: Any,
    shape: tuple[int, ...],
    near_one: bool,
    gains: bool,
) -> None:
    """Both paths give the same figures (odd sizes exercise the kernel's scalar tail)."""
    assert kernel._fused is not None, "the C kernel did not build (see setup.py)"
    a, b = _pair(kind_a, kind_b, shape, near_one)
    chunk = shape[-1] * 4 if len(shape) > 1 else 1000
    fused = _fields(_stream(tmp_path, a, b, gains, chunk))
    monkeypatch.setattr(kernel, "_fused", None)
    plain = _fields(_stream(tmp_path, a, b, gains, chunk))
    assert fused["identical"] == plain["identical"] > 0
    assert fused["sign_agree"] == plain["sign_agree"]
    assert fused["folded_n"] == plain["folded_n"] == (a.size if gains else 0)
    for key in ("cosine", "pearson", "mean_a", "std_b", "sdd", "max_abs", "folded_pearson"):
        assert fused[key] == pytest.approx(plain[key], rel=1e-6, abs=1e-12), key


def test_fused_sums_are_exact_float64(tmp_path: Path) -> None:
    """The kernel's figures equal float64 numpy references (bf16 input is exact in float64)."""
    a, b = _pair(ml_dtypes.bfloat16, ml_dtypes.bfloat16, (8, 4096), False)
    acc = _stream(tmp_path, a, b, False, 4 * 4096)
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    d = x - y
    assert acc.sdd == pytest.approx(float(d @ d), rel=1e-12)
    assert acc.max_abs == float(np.abs(d).max())
    assert acc.identical == int(np.count_nonzero(d == 0))
    assert acc.sign_agree == int(np.count_nonzero(np.signbit(x) == np.signbit(y)))
    assert acc.moments.cosine() == pytest.approx(x @ y / np.sqrt((x @ x) * (y @ y)), rel=1e-12)
    assert acc.moments.pearson() == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-10)


def test_fused_chunk_with_nan_falls_back(tmp_path: Path) -> None:
    """A chunk holding NaN or Inf is redone masked: counted, and the rest still measured."""
    a, b = _pair(ml_dtypes.bfloat16, ml_dtypes.bfloat16, (16, 512), False)
    a.reshape(-1)[100], b.reshape(-1)[2000] = np.nan, np.inf
    acc = _stream(tmp_path, a, b, True, 4 * 512)
    assert (acc.nonfinite_a, acc.nonfinite_b) == (1, 1)
    assert acc.moments.n == a.size - 2
    assert acc.moments.pearson() is not None and acc.moments.pearson() > 0.9


def test_fused_rejects_bad_arguments() -> None:
    """Sizes beyond the buffers and unknown kinds raise instead of reading out of bounds."""
    fused = kernel._fused
    assert fused is not None
    buf = np.zeros(8, dtype=np.uint16)
    with pytest.raises(ValueError):
        fused.pair(buf, 1, buf, 1, 9, 0, 0.0, 0.0, None, None)
    with pytest.raises(ValueError):
        fused.pair(buf, 7, buf, 1, 8, 0, 0.0, 0.0, None, None)
    with pytest.raises(ValueError):
        fused.pair(buf, 1, buf, 1, 8, 4, 0.0, 0.0, np.ones(3), np.ones(4))


@pytest.mark.skipif(kernel._fused is None, reason="the C kernel was not built")
def test_projected_pairs_take_the_fused_path_with_the_same_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row projections (the matching test's features) on the fused path equal the numpy path."""
    from companion.audit.matching import projection

    rng = np.random.default_rng(5)
    a = (0.02 * rng.standard_normal((300, 96))).astype(ml_dtypes.bfloat16)
    b = (0.02 * rng.standard_normal((300, 96))).astype(ml_dtypes.bfloat16)
    write_safetensors(tmp_path / "a.safetensors", {"w": a})
    write_safetensors(tmp_path / "b.safetensors", {"w": b})
    plan = StreamPlan(chunk=96 * 37, projection=projection(96, 16, 0))

    def features() -> tuple[Array, Array, bool]:
        ca, cb = (
            open_checkpoint(tmp_path / "a.safetensors"),
            open_checkpoint(tmp_path / "b.safetensors"),
        )
        try:
            fused = kernel._Pass(ca.tensors["w"], cb.tensors["w"], plan, _NONE).fused
            acc, _, _ = stream_pair(ca.tensors["w"], cb.tensors["w"], plan, _NONE, lambda n: None)
        finally:
            ca.close()
            cb.close()
        assert acc.features_a is not None and acc.features_b is not None
        return acc.features_a, acc.features_b, fused

    fa, fb, fused = features()
    monkeypatch.setattr(kernel, "_fused", None)
    na, nb, numpy_path = features()
    assert fused and not numpy_path
    w = a.astype(np.float64) @ plan.projection
    assert np.allclose(fa, na, atol=1e-6) and np.allclose(fb, nb, atol=1e-6)
    assert np.allclose(fa, w, atol=1e-5) and not np.allclose(fa, 0)


def _ordered_sums(x: list[float], y: list[float], cols: int, ka: float, kb: float) -> list[float]:
    """The kernel's documented summation order, in plain Python floats (IEEE doubles): per
    block of 512 columns of each row, whole groups of eight go to lane (index mod 8), the
    rest to one tail sum; at the end the lanes are added in order, then the tail."""
    lanes, tails = [[0.0] * 8 for _ in range(4)], [0.0] * 4
    for r in range(0, len(x), cols):
        for c in range(0, cols, 512):
            m = min(512, cols - c)
            for i in range(m):
                u, v = x[r + c + i] - ka, y[r + c + i] - kb
                d = x[r + c + i] - y[r + c + i]
                terms = (u, u * u, u * v, d * d)
                for k, term in enumerate(terms):
                    if i < m - m % 8:
                        lanes[k][i % 8] += term
                    else:
                        tails[k] += term
    out = []
    for lane, tail in zip(lanes, tails, strict=True):
        total = 0.0
        for value in lane:
            total += value
        out.append(total + tail)
    return out


@pytest.mark.parametrize(("n", "cols"), [(1000, 0), (3 * 700, 700), (8 * 64, 64)])
def test_fused_sums_follow_the_fixed_order_bit_for_bit(n: int, cols: int) -> None:
    """The kernel's sums equal, bit for bit, the order its header documents (so every
    instruction set, AVX-512, AVX2 or none, gives the same bits)."""
    fused = kernel._fused
    assert fused is not None
    a, b = _pair(ml_dtypes.bfloat16, ml_dtypes.bfloat16, (n,), False)
    x, y = a.astype(np.float64).tolist(), b.astype(np.float64).tolist()
    ka, kb = 0.0123, -0.0456
    sums = fused.pair(a.view(np.uint16), 1, b.view(np.uint16), 1, n, cols, ka, kb, None, None)
    sa, _, saa, _, sab, sdd = sums[:6]
    assert [sa, saa, sab, sdd] == _ordered_sums(x, y, cols or n, ka, kb)
