"""Baselines shown beside every score: shuffle null, cross-layer, random-init reference."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from math import sqrt
from typing import Any

import numpy as np

from companion.audit.metrics import Unit, finite_pair, pearson

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Null:
    """An empirical null distribution summarized."""

    mean: float
    sd: float
    values: Array

    def z(self, x: float) -> float:
        """z-score of an observation (sd floored so identical nulls do not divide by zero)."""
        return (x - self.mean) / max(self.sd, 1e-12)

    def p(self, x: float) -> float:
        """Empirical one-sided p: share of null draws at least as large (with +1 smoothing)."""
        return float((1 + np.count_nonzero(self.values >= x)) / (1 + self.values.size))


def _circular(x: Array, y: Array) -> Array:
    """Dot products of x with every cyclic shift of y: entry s pairs x[i] with y[(i + s) % n]
    (one real FFT of each, of the samples' own length)."""
    n = x.size
    return np.fft.irfft(np.conj(np.fft.rfft(x)) * np.fft.rfft(y), n)


def shuffle_null(a: Array, b: Array, draws: int, seed: int) -> tuple[Null, Null] | None:
    """Pearson and cosine of `a` against `draws` coordinate permutations of `b`.

    Each permutation is a fixed random shuffle composed with a distinct cyclic shift, so
    each is marginally uniform, and all shifts come from one FFT instead of `draws` passes.
    A cyclic shift keeps b's sum, so the raw products are the centred ones plus n·mean·mean:
    one FFT serves both nulls (and the centred one is the accurate one for gains near one).
    """
    a, b = finite_pair(a, b)
    n = a.size
    if n < 8:
        return None
    rng = np.random.default_rng([seed, n, 7])
    b = b[rng.permutation(n)]
    ma, mb = float(a.mean()), float(b.mean())
    ca, cb = a - ma, b - mb
    sa, sb = sqrt(float(ca @ ca)), sqrt(float(cb @ cb))
    na, nb = sqrt(float(a @ a)), sqrt(float(b @ b))
    if min(sa, sb, na, nb) == 0:
        return None
    shifts = rng.choice(n, size=min(draws, n), replace=False)
    centred = _circular(ca, cb)[shifts]
    r_vals = centred / (sa * sb)
    c_vals = (centred + n * ma * mb) / (na * nb)
    return (
        Null(float(r_vals.mean()), float(r_vals.std()), r_vals),
        Null(float(c_vals.mean()), float(c_vals.std()), c_vals),
    )


@cache
def _normal_sums(n: int, seed: int) -> tuple[float, float, float, float, float, float | None]:
    """Sums of two independent standard normal draws z, w of length n (z, w, z·z, w·w, z·w)
    and their Pearson: every tensor of that sample size shares them."""
    rng = np.random.default_rng([seed, n, 11])
    z, w = rng.standard_normal(n), rng.standard_normal(n)
    return float(z.sum()), float(w.sum()), float(z @ z), float(w @ w), float(z @ w), pearson(z, w)


def random_init_reference(
    mean: float, std: float, n: int, seed: int
) -> tuple[float | None, float | None]:
    """Cosine and Pearson of two independent random inits shaped like this tensor.

    Gain-like tensors (mean far from zero) draw N(mean, std); matrices draw N(0, std). The
    draws are centre + std·z and centre + std·w, so both figures follow from z's and w's sums.
    """
    if n < 2 or std <= 0:
        return None, None
    centre = mean if abs(mean) > 3 * std else 0.0
    z, w, zz, ww, zw, r = _normal_sums(n, seed)
    c, s = centre, std
    xx = n * c * c + 2 * c * s * z + s * s * zz
    yy = n * c * c + 2 * c * s * w + s * s * ww
    xy = n * c * c + c * s * (z + w) + s * s * zw
    cos = max(-1.0, min(1.0, xy / sqrt(xx * yy))) if xx > 0 and yy > 0 else None
    return cos, r


def cross_layer(
    target: Array, others: list[Array], unit: Unit | None = None
) -> tuple[float, float, int] | None:
    """Mean, sd and count of Pearson between `target` and the same role at other layers."""
    corr = (unit or Unit()).pearson
    vals = [v for o in others if (v := corr(target, o)) is not None]
    if not vals:
        return None
    arr = np.asarray(vals)
    return float(arr.mean()), float(arr.std()), len(vals)
