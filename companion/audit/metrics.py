"""One streamed pass per tensor pair with float64 accumulators, plus sample-based metrics.

Sums are taken on values shifted by a per-tensor reference (the sample mean) so that
Pearson stays exact for gains that sit near one; cosine is rebuilt from the shifted sums.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import sqrt
from typing import Any

import numpy as np
from scipy.stats import rankdata

from companion.audit.checkpoint import TensorRef
from companion.audit.safetensors import decode

Array = np.ndarray[Any, Any]


@dataclass
class Moments:
    """Shifted first and second moments of a pair (sums of a-ka, b-kb, squares, products)."""

    ka: float = 0.0
    kb: float = 0.0
    n: int = 0
    sa: float = 0.0
    sb: float = 0.0
    saa: float = 0.0
    sbb: float = 0.0
    sab: float = 0.0

    def add(self, a: Array, b: Array, count: int) -> None:
        """Accumulate shifted arrays (entries outside the count must already be zero)."""
        fa, fb = a.ravel(), b.ravel()
        self.n += count
        self.sa += float(fa.sum())
        self.sb += float(fb.sum())
        self.saa += float(fa @ fa)
        self.sbb += float(fb @ fb)
        self.sab += float(fa @ fb)

    def pearson(self) -> float | None:
        """Mean-centred cosine (Pearson correlation)."""
        if self.n < 2:
            return None
        ma, mb = self.sa / self.n, self.sb / self.n
        va, vb = self.saa / self.n - ma * ma, self.sbb / self.n - mb * mb
        if va <= 0 or vb <= 0:
            return None
        return _clip((self.sab / self.n - ma * mb) / sqrt(va * vb))

    def raw(self) -> tuple[float, float, float]:
        """Unshifted sums of a*a, b*b and a*b."""
        n, ka, kb = self.n, self.ka, self.kb
        raa = self.saa + 2 * ka * self.sa + n * ka * ka
        rbb = self.sbb + 2 * kb * self.sb + n * kb * kb
        rab = self.sab + kb * self.sa + ka * self.sb + n * ka * kb
        return raa, rbb, rab

    def cosine(self) -> float | None:
        """Raw cosine similarity."""
        raa, rbb, rab = self.raw()
        return _clip(rab / sqrt(raa * rbb)) if raa > 0 and rbb > 0 else None

    def mean_std(self) -> tuple[float | None, float | None, float | None, float | None]:
        """Mean and standard deviation of each side."""
        if self.n == 0:
            return None, None, None, None
        ma, mb = self.sa / self.n, self.sb / self.n
        va = max(self.saa / self.n - ma * ma, 0.0)
        vb = max(self.sbb / self.n - mb * mb, 0.0)
        return self.ka + ma, sqrt(va), self.kb + mb, sqrt(vb)


def _clip(x: float) -> float:
    """Clamp a correlation into [-1, 1] (rounding can push it just past)."""
    return max(-1.0, min(1.0, x))


@dataclass
class PairAccumulator:
    """Everything the streamed pass collects for one tensor pair."""

    moments: Moments
    folded: Moments = field(default_factory=Moments)
    sdd: float = 0.0
    max_abs: float = 0.0
    identical: int = 0
    sign_agree: int = 0
    nonfinite_a: int = 0
    nonfinite_b: int = 0
    features_a: Array | None = None
    features_b: Array | None = None


@dataclass(frozen=True)
class StreamPlan:
    """Options for one pair: chunk size, optional gain folding and row projection."""

    chunk: int = 1 << 17
    gain_a: Array | None = None
    gain_b: Array | None = None
    projection: Array | None = None


def stream_pair(
    ra: TensorRef,
    rb: TensorRef,
    shift: tuple[float, float],
    plan: StreamPlan,
    tick: Callable[[int], None],
) -> PairAccumulator:
    """Read both tensors chunk by chunk (row-aligned for matrices) and accumulate metrics.

    `tick(nbytes)` is called after each chunk; it reports progress and raises on cancel.
    """
    shape = ra.info.shape
    cols = shape[-1] if len(shape) >= 2 else 0
    rows_per = max(1, plan.chunk // cols) if cols else 0
    chunk = rows_per * cols if cols else plan.chunk
    acc = PairAccumulator(Moments(ka=shift[0], kb=shift[1]))
    fold = plan.gain_a is not None and plan.gain_b is not None and cols > 0
    if plan.projection is not None and cols:
        rows = ra.info.numel // cols
        acc.features_a = np.zeros((rows, plan.projection.shape[1]))
        acc.features_b = np.zeros_like(acc.features_a)
    row = 0
    itemsize = ra.info.np_dtype.itemsize + rb.info.np_dtype.itemsize
    for va, vb in zip(
        ra.file.chunks(ra.info.name, chunk), rb.file.chunks(rb.info.name, chunk), strict=True
    ):
        a, b = decode(va), decode(vb)
        count = a.size
        mask: Array | None = None
        if not (np.isfinite(a.sum()) and np.isfinite(b.sum())):
            fa_ok, fb_ok = np.isfinite(a), np.isfinite(b)
            acc.nonfinite_a += int(a.size - np.count_nonzero(fa_ok))
            acc.nonfinite_b += int(b.size - np.count_nonzero(fb_ok))
            mask = fa_ok & fb_ok
            count = int(np.count_nonzero(mask))
            a, b = np.where(mask, a, 0.0), np.where(mask, b, 0.0)
        skipped = a.size - count
        d = a - b
        acc.sdd += float(d @ d)
        if count:
            acc.max_abs = max(acc.max_abs, float(np.abs(d).max()))
        acc.identical += int(np.count_nonzero(d == 0)) - skipped
        acc.sign_agree += int(np.count_nonzero(np.signbit(a) == np.signbit(b))) - skipped
        if cols:
            a2, b2 = a.reshape(-1, cols), b.reshape(-1, cols)
            if fold:
                acc.folded.add(a2 * plan.gain_a, b2 * plan.gain_b, count)
            if acc.features_a is not None and acc.features_b is not None:
                r = a2.shape[0]
                acc.features_a[row : row + r] = a2 @ plan.projection
                acc.features_b[row : row + r] = b2 @ plan.projection
                row += r
        a -= shift[0]
        b -= shift[1]
        if mask is not None:
            a[~mask] = 0.0
            b[~mask] = 0.0
        acc.moments.add(a, b, count)
        tick(va.size * itemsize)
    return acc


def sample_positions(numel: int, size: int, seed: int, block: int = 256) -> Array:
    """Deterministic element positions: `size` elements in contiguous blocks spread evenly.

    Equal sizes give equal positions, so samples of same-shaped tensors line up.
    """
    if numel <= size:
        return np.arange(numel)
    nblocks = max(1, size // block)
    rng = np.random.default_rng([seed, numel])
    span = numel // nblocks
    starts = np.arange(nblocks) * span + rng.integers(0, max(1, span - block + 1), nblocks)
    return (starts[:, None] + np.arange(block)[None, :]).reshape(-1)


def read_sample(ref: TensorRef, size: int, seed: int) -> Array:
    """Read a deterministic sample of a tensor as float64, block by block."""
    numel = ref.info.numel
    if numel <= size:
        return np.asarray(decode(ref.file.read(ref.info.name)), dtype=np.float64)
    pos = sample_positions(numel, size, seed)
    starts = pos[::256]
    parts = [decode(ref.file.read(ref.info.name, int(s), 256)) for s in starts]
    return np.concatenate(parts)


def finite_pair(a: Array, b: Array) -> tuple[Array, Array]:
    """Drop positions where either side is NaN or Inf."""
    ok = np.isfinite(a) & np.isfinite(b)
    return (a, b) if ok.all() else (a[ok], b[ok])


def pearson(a: Array, b: Array) -> float | None:
    """Pearson correlation of two samples (None when undefined)."""
    a, b = finite_pair(a, b)
    if a.size < 2:
        return None
    ca, cb = a - a.mean(), b - b.mean()
    den = sqrt(float(ca @ ca) * float(cb @ cb))
    return _clip(float(ca @ cb) / den) if den > 0 else None


def cosine(a: Array, b: Array) -> float | None:
    """Raw cosine of two samples."""
    a, b = finite_pair(a, b)
    den = sqrt(float(a @ a) * float(b @ b))
    return _clip(float(a @ b) / den) if den > 0 else None


def spearman(a: Array, b: Array) -> float | None:
    """Spearman rank correlation of two samples."""
    a, b = finite_pair(a, b)
    if a.size < 3:
        return None
    return pearson(rankdata(a), rankdata(b))


def absdiff_quantiles(a: Array, b: Array) -> tuple[float | None, float | None]:
    """p50 and p99 of |a - b| on a sample."""
    a, b = finite_pair(a, b)
    if a.size == 0:
        return None, None
    q = np.quantile(np.abs(a - b), [0.5, 0.99])
    return float(q[0]), float(q[1])
