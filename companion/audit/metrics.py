"""Accumulators of the streamed pass (see kernel.py) and the sample-based metrics.

Sums may be taken on values shifted by a per-tensor reference (the mean, for gains that sit
near one) so that Pearson stays exact; cosine is rebuilt from the shifted sums.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import sqrt
from typing import Any

import numpy as np

from companion.audit.checkpoint import TensorRef
from companion.audit.reader import Gate
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

    def add_sums(
        self, count: int, sa: float, sb: float, saa: float, sbb: float, sab: float
    ) -> None:
        """Accumulate sums already taken over a chunk (shifted by ka and kb)."""
        self.n += count
        self.sa += float(sa)
        self.sb += float(sb)
        self.saa += float(saa)
        self.sbb += float(sbb)
        self.sab += float(sab)

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
    """Options for one pair: chunk size, gain folding, row projection, the shared reader."""

    chunk: int = 1 << 19
    gain_a: Array | None = None
    gain_b: Array | None = None
    projection: Array | None = None
    gate: Gate | None = None


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


def positions_for(numel: int, size: int, seed: int) -> Array:
    """Sorted sample positions of a tensor (all of it when it is small)."""
    return np.arange(numel) if numel <= size else sample_positions(numel, size, seed)


def finite_pair(a: Array, b: Array) -> tuple[Array, Array]:
    """As float64, dropping positions where either side is NaN or Inf."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
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


class Unit:
    """Samples centred and scaled to unit length, each once: a Pearson between two of them is
    then one dot product (the cross-layer baselines take ~16 per tensor)."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[Array, Array | None]] = {}

    def of(self, x: Array) -> Array | None:
        """`x` centred to unit norm; None when it holds NaN or Inf, or is constant."""
        key = id(x)
        if key not in self._memo:  # x is kept with its entry, so its id stays its own
            y = np.asarray(x, dtype=np.float64)
            c = y - y.mean() if y.size >= 2 and np.isfinite(y).all() else None
            norm = sqrt(float(c @ c)) if c is not None else 0.0
            self._memo[key] = (x, c / norm if c is not None and norm > 0 else None)
        return self._memo[key][1]

    def pearson(self, a: Array, b: Array) -> float | None:
        """Pearson of two samples (as `pearson`)."""
        za, zb = self.of(a), self.of(b)
        if za is None or zb is None or za.size != zb.size:
            return pearson(a, b)
        return _clip(float(za @ zb))


def cosine(a: Array, b: Array) -> float | None:
    """Raw cosine of two samples."""
    a, b = finite_pair(a, b)
    den = sqrt(float(a @ a) * float(b @ b))
    return _clip(float(a @ b) / den) if den > 0 else None


def _words16(x: Array) -> Array | None:
    """The 16-bit words of x's values (float64) when each is a bfloat16 number, else a
    float16 number; None when not (a few values are tried first: a cheap refusal)."""
    for narrow, shift in ((np.float32, 16), (np.float16, 0)):
        for part in (x[:64], x):
            y = part.astype(narrow)
            words = y.view(np.uint32) if shift else y.view(np.uint16)
            if (shift and (words & 0xFFFF).any()) or not np.array_equal(y, part):
                break
        else:
            return (words >> shift).astype(np.uint16)
    return None


def _order(x: Array) -> Array:
    """An order sorting x: by a 16-bit radix sort when its values are bfloat16 or float16
    numbers, as checkpoint samples mostly are (0.07 ms for 16K values here, against 0.62 for
    argsort). -0.0 sorts just before +0.0, so the two still form one tie."""
    w = _words16(x)
    if w is None:
        return np.argsort(x)
    key = np.where(w & 0x8000, ~w, w | 0x8000)  # the order of the values, as integers
    return np.argsort(key, kind="stable")


def ranks(x: Array) -> Array:
    """Ranks from 1, ties sharing their average rank (as scipy's rankdata 'average')."""
    order = _order(x)  # ties get their average rank: the order within a tie is moot
    s = x[order]
    new = np.empty(s.size, dtype=bool)
    new[:1] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, s.size))
    out = np.empty(x.size, dtype=np.float64)
    out[order] = np.repeat(starts + (counts + 1) / 2.0, counts)
    return out


def spearman(a: Array, b: Array) -> float | None:
    """Spearman rank correlation of two samples."""
    a, b = finite_pair(a, b)
    if a.size < 3:
        return None
    return pearson(ranks(a), ranks(b))


def absdiff_quantiles(a: Array, b: Array) -> tuple[float | None, float | None]:
    """p50 and p99 of |a - b| on a sample."""
    a, b = finite_pair(a, b)
    if a.size == 0:
        return None, None
    q = np.quantile(np.abs(a - b), [0.5, 0.99])
    return float(q[0]), float(q[1])
