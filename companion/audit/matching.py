"""Permutation-robust comparison: match hidden units / heads by linear assignment, then correlate.

Rows (MLP units, attention heads) are described by a random projection of their weights.
A function-preserving permutation of B reorders rows but keeps each row's projection, so
matching A's rows to B's and correlating matched pairs recovers the relation. The null, in
the style of Zhu et al.'s independence tests, matches A against B's features taken on
mismatched projection directions (cyclic shifts of the projection columns), which keeps B's
distribution but breaks any correspondence; p is the share of null draws at least as high.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from companion.audit.schemas import UnitMatch

Array = np.ndarray[Any, Any]


_BLOCK = 1024  # B rows per similarity block in nearest-neighbour matching


def projection(cols: int, k: int, seed: int) -> Array:
    """A fixed Gaussian projection (identity when the rows are already short)."""
    if cols <= k:
        return np.asarray(np.eye(cols), dtype=np.float64)
    rng = np.random.default_rng([seed, cols, 13])
    return np.asarray(rng.standard_normal((cols, k)) / np.sqrt(k), dtype=np.float64)


def _unit_rows(f: Array) -> Array:
    """Centre and L2-normalise each row so a dot product is a correlation."""
    c = f - f.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(c, axis=1, keepdims=True)
    out: Array = np.divide(c, norm, out=np.zeros_like(c), where=norm > 0)
    return out


def _matched(za: Array, zb: Array, max_units: int) -> tuple[float, Array]:
    """Mean similarity after matching each B row to an A row, and the chosen A rows."""
    if zb.shape[0] <= max_units:
        sim = zb @ za.T
        from scipy.optimize import linear_sum_assignment  # 0.25 s to import: only when used

        rows, cols = linear_sum_assignment(-sim)
        return float(sim[rows, cols].mean()), cols[np.argsort(rows)]
    # Many units: nearest neighbour, in float32 row blocks so the n×n matrix never exists.
    za32 = za.astype(np.float32)
    best = np.empty(zb.shape[0], dtype=np.int64)
    score = np.empty(zb.shape[0], dtype=np.float64)
    for start in range(0, zb.shape[0], _BLOCK):
        block = zb[start : start + _BLOCK].astype(np.float32) @ za32.T
        idx = block.argmax(axis=1)
        best[start : start + len(idx)] = idx
        score[start : start + len(idx)] = block[np.arange(len(idx)), idx]
    return float(score.mean()), best


def _group(f: Array, size: int) -> Array:
    """Concatenate consecutive rows into units of `size` rows (heads)."""
    return f.reshape(f.shape[0] // size, size * f.shape[1])


def match_test(
    fa: Array,
    fb: Array,
    kind: Literal["mlp_units", "heads"],
    group: int,
    draws: int,
    max_units: int,
) -> UnitMatch | None:
    """Match rows (or groups of `group` rows) of A and B features and test against the null."""
    if fa.shape != fb.shape or fa.shape[0] % group or fa.shape[1] < 2:
        return None
    units = fa.shape[0] // group
    if units < 2:
        return None
    za = _unit_rows(_group(fa, group))
    observed, chosen = _matched(za, _unit_rows(_group(fb, group)), max_units)
    k = fb.shape[1]
    shifts = np.unique(np.linspace(1, k - 1, min(draws, k - 1)).round().astype(int))
    null = np.asarray(
        [
            _matched(za, _unit_rows(_group(np.roll(fb, int(s), axis=1), group)), max_units)[0]
            for s in shifts
        ]
    )
    mean, sd = float(null.mean()), float(null.std())
    return UnitMatch(
        kind=kind,
        units=units,
        method="assignment" if units <= max_units else "nearest",
        observed=observed,
        null_mean=mean,
        null_sd=sd,
        z=(observed - mean) / max(sd, 1e-12),
        p=float((1 + np.count_nonzero(null >= observed)) / (1 + null.size)),
        draws=int(null.size),
        moved=float(np.mean(chosen != np.arange(units))),
    )
