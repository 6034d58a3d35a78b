"""Baselines shown beside every score: shuffle null, cross-layer, random-init reference."""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt
from typing import Any

import numpy as np

from companion.audit.metrics import cosine, finite_pair, pearson

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
    """Dot products of x with every cyclic shift of y (via FFT)."""
    n = x.size
    size = 1 << (2 * n - 1).bit_length()
    fx = np.fft.rfft(x, size)
    fy = np.fft.rfft(y, size)
    full = np.fft.irfft(np.conj(fx) * fy, size)
    # shift s pairs x[i] with y[(i + s) % n]: the linear correlation wrapped around
    return full[:n] + np.concatenate(([0.0], full[size - n + 1 :]))


def shuffle_null(a: Array, b: Array, draws: int, seed: int) -> tuple[Null, Null] | None:
    """Pearson and cosine of `a` against `draws` coordinate permutations of `b`.

    Each permutation is a fixed random shuffle composed with a distinct cyclic shift, so
    each is marginally uniform, and all shifts come from one FFT instead of `draws` passes.
    """
    a, b = finite_pair(a, b)
    n = a.size
    if n < 8:
        return None
    rng = np.random.default_rng([seed, n, 7])
    b = b[rng.permutation(n)]
    ca, cb = a - a.mean(), b - b.mean()
    sa, sb = sqrt(float(ca @ ca)), sqrt(float(cb @ cb))
    na, nb = sqrt(float(a @ a)), sqrt(float(b @ b))
    if min(sa, sb, na, nb) == 0:
        return None
    shifts = rng.choice(n, size=min(draws, n), replace=False)
    r_vals = _circular(ca, cb)[shifts] / (sa * sb)
    c_vals = _circular(a, b)[shifts] / (na * nb)
    return (
        Null(float(r_vals.mean()), float(r_vals.std()), r_vals),
        Null(float(c_vals.mean()), float(c_vals.std()), c_vals),
    )


def random_init_reference(
    mean: float, std: float, n: int, seed: int
) -> tuple[float | None, float | None]:
    """Cosine and Pearson of two independent random inits shaped like this tensor.

    Gain-like tensors (mean far from zero) draw N(mean, std); matrices draw N(0, std).
    """
    if n < 2 or std <= 0:
        return None, None
    rng = np.random.default_rng([seed, n, 11])
    centre = mean if abs(mean) > 3 * std else 0.0
    x = centre + std * rng.standard_normal(n)
    y = centre + std * rng.standard_normal(n)
    return cosine(x, y), pearson(x, y)


def cross_layer(target: Array, others: list[Array]) -> tuple[float, float, int] | None:
    """Mean, sd and count of Pearson between `target` and the same role at other layers."""
    vals = [v for o in others if (v := pearson(target, o)) is not None]
    if not vals:
        return None
    arr = np.asarray(vals)
    return float(arr.mean()), float(arr.std()), len(vals)
