"""Linear merges, per tensor: b ≈ α·a + Σ βᵢ·cᵢ for the baseline models Cᵢ given with --baseline.

Every side's deterministic sample sits at the same element positions for tensors of the same
shape, so the least squares fit of B's sample on A's and the candidates' is the per-tensor fit
(exact for an exact merge, whatever the sample). Each tensor gives α, every βᵢ and their
t-statistics (coefficient over its standard error, from the residual); with Cᵢ unrelated to
what B added, its t is about N(0, 1). This module is the per-tensor arithmetic; which
candidates take part, and what is named, is merge_fit.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
MAX_T = 1e6  # an exact merge leaves no residual: t is capped
MAX_COND = 1e12  # above: the columns are (nearly) collinear here and not separable


@dataclass(frozen=True)
class TensorFit:
    """One tensor's least squares fit b ≈ α·a + β·c (a single candidate)."""

    alpha: float
    beta: float
    t_beta: float
    residual: float  # ||b - α a - β c|| / ||b||
    residual_a: float  # the same with A alone (b ≈ γ a)


@dataclass(frozen=True)
class MultiFit:
    """One tensor's fit b ≈ α·a + Σ βᵢ·cᵢ over the candidates present for it."""

    alpha: float
    t_alpha: float
    betas: tuple[float, ...]
    t_betas: tuple[float, ...]
    residual: float  # ||b - fit|| / ||b||
    residual_a: float  # the same with A alone (b ≈ γ a)


def _clean(xs: Sequence[Array]) -> list[Array] | None:
    """Flat float64 copies, or None when any has a non-finite value."""
    out = [np.asarray(x, dtype=np.float64).ravel() for x in xs]
    return out if all(np.isfinite(x).all() for x in out) else None


def fit_multi(a: Array, b: Array, cs: Sequence[Array]) -> MultiFit | None:
    """Least squares of b on [a, c₁ … cₖ] with every coefficient's |t|; None when degenerate."""
    cols = _clean([a, b, *cs])
    if cols is None:
        return None
    a, b, cs = cols[0], cols[1], cols[2:]
    n, k = a.size, 1 + len(cs)
    if n < 6 + k or any(c.size != n for c in (b, *cs)):
        return None
    x = np.stack([a, *cs], axis=1)
    gram = x.T @ x
    if np.linalg.cond(gram) > MAX_COND:
        return None  # A and a candidate (nearly) identical here: not separable
    theta = np.linalg.solve(gram, x.T @ b)
    resid = b - x @ theta
    rss = float(resid @ resid)
    se = np.sqrt(rss / (n - k) * np.diag(np.linalg.inv(gram)))
    t = [
        MAX_T if s == 0 else min(abs(float(v)) / float(s), MAX_T)
        for v, s in zip(theta, se, strict=True)
    ]
    bb = float(b @ b) or 1.0
    gamma = float(a @ b) / (float(a @ a) or 1.0)
    resid_a = b - gamma * a
    return MultiFit(
        alpha=float(theta[0]),
        t_alpha=t[0],
        betas=tuple(float(v) for v in theta[1:]),
        t_betas=tuple(t[1:]),
        residual=float(np.sqrt(rss / bb)),
        residual_a=float(np.sqrt(float(resid_a @ resid_a) / bb)),
    )


def fit_tensor(a: Array, b: Array, c: Array) -> TensorFit | None:
    """Least squares of b on [a, c] (float64), with β's t-statistic; None when degenerate."""
    fit = fit_multi(a, b, [c])
    if fit is None:
        return None
    return TensorFit(fit.alpha, fit.betas[0], fit.t_betas[0], fit.residual, fit.residual_a)


def spanned(c: Array, cols: Sequence[Array]) -> float | None:
    """||c − its projection on the columns|| / ||c||: 0 when c is a combination of them."""
    clean = _clean([c, *cols])
    if clean is None or any(x.size != clean[0].size for x in clean):
        return None
    c, x = clean[0], np.stack(clean[1:], axis=1)
    cc = float(c @ c)
    if cc == 0:
        return 0.0  # an all-zero candidate adds nothing
    theta, *_ = np.linalg.lstsq(x, c, rcond=None)
    resid = c - x @ theta
    return float(np.sqrt(float(resid @ resid) / cc))
