"""Linear merges: is B ≈ α·A + β·C per tensor, for the baseline model C given with --baseline?

Every side's deterministic sample sits at the same element positions for tensors of the same
shape, so the least squares fit of B's sample on A's and C's is the per-tensor fit (exact for
an exact merge, whatever the sample). Each tensor gives α, β and the t-statistic of β (β over
its standard error, from the residual); with C unrelated to what B added, t is about N(0, 1).
A merge is named when β is clearly nonzero in most matrices, and the figures are the
medians and interquartile spreads over tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import TYPE_CHECKING, Any

import numpy as np

from companion.audit.schemas import Derivation

if TYPE_CHECKING:
    from companion.audit.summarize import Streams

Array = np.ndarray[Any, Any]
MIN_BETA = 0.05  # a smaller share of C is not called a merge
MIN_T = 5.0  # median t of β over matrices
MIN_SHARE = 0.5  # share of matrices whose β has t >= 3
MAX_T = 1e6  # an exact merge leaves no residual: t is capped


@dataclass(frozen=True)
class TensorFit:
    """One tensor's least squares fit b ≈ α·a + β·c."""

    alpha: float
    beta: float
    t_beta: float
    residual: float  # ||b - α a - β c|| / ||b||
    residual_a: float  # the same with A alone (b ≈ γ a)


def fit_tensor(a: Array, b: Array, c: Array) -> TensorFit | None:
    """Least squares of b on [a, c] (float64), with β's t-statistic; None when degenerate."""
    a, b, c = (np.asarray(x, dtype=np.float64).ravel() for x in (a, b, c))
    n = a.size
    if n < 8 or not (np.isfinite(a).all() and np.isfinite(b).all() and np.isfinite(c).all()):
        return None
    x = np.stack([a, c], axis=1)
    gram = x.T @ x
    if np.linalg.cond(gram) > 1e12:
        return None  # A and C (nearly) identical here: α and β are not separable
    theta = np.linalg.solve(gram, x.T @ b)
    resid = b - x @ theta
    rss = float(resid @ resid)
    sigma2 = rss / (n - 2)
    se = float(np.sqrt(sigma2 * np.linalg.inv(gram)[1, 1]))
    t = MAX_T if se == 0 else min(abs(float(theta[1])) / se, MAX_T)
    bb = float(b @ b) or 1.0
    gamma = float(a @ b) / (float(a @ a) or 1.0)
    resid_a = b - gamma * a
    return TensorFit(
        alpha=float(theta[0]),
        beta=float(theta[1]),
        t_beta=t,
        residual=float(np.sqrt(rss / bb)),
        residual_a=float(np.sqrt(float(resid_a @ resid_a) / bb)),
    )


def tensor_fits(s: Streams) -> list[TensorFit]:
    """The fit of every matrix B shares with A and the baseline C (from the samples)."""
    if s.third is None:
        return []
    third = {p.name_a: p.name_b for p in s.third_pairs}
    out = []
    for pair in s.pairs:
        name_c = third.get(pair.name_a)
        if name_c is None or len(s.a.ref(pair.name_a).info.shape) != 2:
            continue
        a = s.a.samples.get(pair.name_a)
        b = s.b.samples.get(pair.name_b)
        c = s.third.samples.get(name_c)
        if a is None or b is None or c is None or not (a.size == b.size == c.size):
            continue
        if (fit := fit_tensor(a, b, c)) is not None:
            out.append(fit)
    return out


def _iqr(values: list[float]) -> float:
    """Interquartile range."""
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def merge_figures(fits: list[TensorFit]) -> dict[str, float | int | str]:
    """Medians and spreads of α, β and the fit over tensors."""
    alphas, betas = [f.alpha for f in fits], [f.beta for f in fits]
    return {
        "alpha": round(median(alphas), 4),
        "beta": round(median(betas), 4),
        "alpha_iqr": round(_iqr(alphas), 4),
        "beta_iqr": round(_iqr(betas), 4),
        "beta_t_median": round(median(f.t_beta for f in fits), 1),
        "residual_median": round(median(f.residual for f in fits), 4),
        "residual_a_only_median": round(median(f.residual_a for f in fits), 4),
        "tensors": len(fits),
    }


def is_merge(fits: list[TensorFit]) -> bool:
    """β clearly nonzero (and A still in B) over most matrices."""
    if not fits:
        return False
    beta = median(f.beta for f in fits)
    alpha = median(f.alpha for f in fits)
    t = median(f.t_beta for f in fits)
    share = sum(f.t_beta >= 3.0 for f in fits) / len(fits)
    return beta >= MIN_BETA and alpha >= MIN_BETA and t >= MIN_T and share >= MIN_SHARE


def linear_merge(s: Streams) -> Derivation | None:
    """A `merge` derivation when B ≈ α·A + β·C with the baseline C, else None."""
    fits = tensor_fits(s)
    if not is_merge(fits):
        return None
    figures = merge_figures(fits)
    exact = float(figures["residual_median"]) < 0.01
    return Derivation(
        kind="merge",
        figures=figures,
        confidence="high" if exact else "medium",
        statement=f"B ≈ {figures['alpha']}·A + {figures['beta']}·C per tensor (least squares "
        f"over {len(fits)} matrices; residual {figures['residual_median']} of B's norm, "
        f"{figures['residual_a_only_median']} with A alone)"
        + (": a linear merge." if exact else ": a merge, then further changes."),
    )
