"""Permutation-robust comparison: match hidden units / heads by linear assignment, then correlate.

Rows (MLP units, attention heads) are described by a random projection of their weights.
A function-preserving permutation of B reorders rows but keeps each row's projection, so
matching A's rows to B's and correlating matched pairs recovers the relation. The null matches A
against B's unit rows mixed by a random orthogonal map (column means and covariances kept),
running the same assignment, so the null carries the selection bias of matching; p is the
share of null draws at least as high. Above MATCH_SAMPLE units, a fixed random sample of B's
units is matched against every A unit (observation and null alike, so the test stays exact),
and the null stops early once `decisive` settles it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from companion.audit.schemas import UnitMatch

Array = np.ndarray[Any, Any]


_BLOCK = 1024  # B rows per similarity block in nearest-neighbour matching
MAX_SIM = 1 << 23  # largest similarity matrix (entries) handed to exact assignment (64 MB)
MATCH_SAMPLE = 256  # B units matched per test when there are more (each against all of A)
MIN_DRAWS = 5
Z_DECISIVE = 20.0  # observation this many null sd above every draw: no more draws needed


def decisive(observed: float, null: Array, above: bool = True) -> bool:
    """Whether MIN_DRAWS or more draws already settle the test in either direction.

    Above (when `above`): the observation beats every draw by Z_DECISIVE null sd. Inside:
    it is at most the draws' median (its z cannot reach any threshold). The stopped tests'
    false-derived rates are checked in tests/audit/test_audit_calibration.py and
    tests/audit/test_audit_early_stop.py.
    """
    if null.size < MIN_DRAWS:
        return False
    if observed <= float(np.median(null)):
        return True
    sd = max(float(null.std()), 1e-9)
    return bool(above and observed > null.max() and (observed - null.mean()) / sd >= Z_DECISIVE)


def sample_units(units: int, size: int, seed: int) -> Array:
    """A fixed sorted sample of `size` unit indices (all of them when there are few)."""
    if size <= 0 or units <= size:
        return np.arange(units)
    rng = np.random.default_rng([seed, units, 19])
    return np.sort(rng.choice(units, size=size, replace=False))


def projection(cols: int, k: int, seed: int) -> Array:
    """A fixed Gaussian projection (identity when the rows are already short)."""
    if cols <= k:
        return np.asarray(np.eye(cols), dtype=np.float64)
    rng = np.random.default_rng([seed, cols, 13])
    return np.asarray(rng.standard_normal((cols, k)) / np.sqrt(k), dtype=np.float64)


def unit_rows(f: Array) -> Array:
    """Centre and L2-normalise each row so a dot product is a correlation."""
    c = f - f.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(c, axis=1, keepdims=True)
    out: Array = np.divide(c, norm, out=np.zeros_like(c), where=norm > 0)
    return out


SMALL_ASSIGN = 64  # up to this many rows (heads, small layers): solved here, without scipy


def assignment(cost: Array) -> tuple[Array, Array]:
    """Minimum-cost assignment (as scipy's linear_sum_assignment): rows, and their columns.

    Small problems are solved here (Hungarian method with potentials, vectorised over
    columns; the same optimum, tested) unless scipy is loaded already, so that scipy (0.4 s
    to import) loads only for large ones."""
    if min(cost.shape) > SMALL_ASSIGN or "scipy.optimize" in sys.modules:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(cost)
        return np.asarray(rows), np.asarray(cols)
    if cost.shape[0] > cost.shape[1]:
        cols, rows = assignment(cost.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    return np.arange(cost.shape[0]), _hungarian(np.asarray(cost, dtype=np.float64))


def _hungarian(cost: Array) -> Array:
    """The column of each row (rows <= columns) minimising the total cost."""
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # 1-based row holding each column (0: free)
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        owner[0], j0 = i, 0
        minv, used = np.full(m + 1, np.inf), np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = int(way[j0])
            owner[j0] = owner[j1]
            j0 = j1
    col = np.empty(n, dtype=np.int64)
    taken = np.flatnonzero(owner[1:])
    col[owner[1:][taken] - 1] = taken
    return col


def matched(za: Array, zb: Array, max_units: int) -> tuple[float, Array]:
    """Mean similarity after matching each B row to an A row, and the chosen A rows."""
    if zb.shape[0] <= max_units and zb.shape[0] * za.shape[0] <= MAX_SIM:
        sim = zb @ za.T
        rows, cols = assignment(-sim)
        return float(sim[rows, cols].mean()), cols[np.argsort(rows)]
    # Many units: nearest neighbour, in float32 row blocks so the n×n matrix never exists.
    za32 = za.astype(np.float32)
    best = np.empty(zb.shape[0], dtype=np.int64)
    score = np.empty(zb.shape[0], dtype=np.float64)
    step = max(1, min(_BLOCK, MAX_SIM // 8 // max(za.shape[0], 1)))
    for start in range(0, zb.shape[0], step):
        block = zb[start : start + step].astype(np.float32) @ za32.T
        idx = block.argmax(axis=1)
        best[start : start + len(idx)] = idx
        score[start : start + len(idx)] = block[np.arange(len(idx)), idx]
    return float(score.mean()), best


def _complement_basis(n: int, rng: np.random.Generator) -> Array:
    """A random orthonormal basis (n x n-1) of the vectors orthogonal to the ones vector."""
    m = rng.standard_normal((n, n - 1))
    q, r = np.linalg.qr(m - m.mean(axis=0))
    return np.asarray(q * np.sign(np.diag(r)))


def mix_rows(x: Array, rng: np.random.Generator, block: int = 64) -> Array:
    """x's rows mixed by a random rotation that fixes the ones vector (block-wise).

    Every column mean and the Gram matrix of the centred columns (every variance and
    cross-feature covariance) are kept exactly; which row is which is lost. For iid
    Gaussian rows this is an exact re-draw, and unlike a covariance re-draw it stays
    exact when there are fewer rows than features.
    """
    x = x[rng.permutation(x.shape[0])]
    out = np.array(x, dtype=np.float64)
    for start in range(0, x.shape[0], block):
        rows = out[start : start + block]
        n = rows.shape[0]
        if n < 3:
            continue
        mean = rows.mean(axis=0)
        u, v = _complement_basis(n, rng), _complement_basis(n, rng)
        out[start : start + n] = mean + u @ (v.T @ (rows - mean))
    return out


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
    check: Callable[[], None] | None = None,
    early: bool = False,
    sample: int = 0,
) -> UnitMatch | None:
    """Match rows (or groups of `group` rows) of A and B features and test against the null.

    With `sample`, at most that many B units (a fixed random subset) are matched; with
    `early`, null draws stop once the observation sits inside them (`decisive`, at least
    MIN_DRAWS). A related pair takes every draw, so its empirical p keeps its resolution.
    """
    if fa.shape != fb.shape or fa.shape[0] % group or fa.shape[1] < 2:
        return None
    units = fa.shape[0] // group
    if units < 2:
        return None
    za = unit_rows(_group(fa, group))
    picked = sample_units(units, sample, fa.shape[1])
    fbg = _group(fb, group)[picked]
    if picked.size < units:  # a sample: nearest match (assignment would only add cost)
        max_units = 0
    observed, chosen = matched(za, unit_rows(fbg), max_units)
    # Null: the same assignment against B's unit features re-drawn with matched moments
    # (mean and covariance of B's rows), so the selection bias of matching is in the null.
    rng = np.random.default_rng([units, fa.shape[1], 17])
    values: list[float] = []
    for _ in range(max(draws, 2)):
        if check is not None:
            check()  # the job's cancel check, between draws
        values.append(matched(za, unit_rows(mix_rows(fbg, rng)), max_units)[0])
        if early and decisive(observed, np.asarray(values), above=False):
            break
    null = np.asarray(values)
    mean, sd = float(null.mean()), float(null.std())
    return UnitMatch(
        kind=kind,
        units=int(picked.size),
        method="assignment" if picked.size <= max_units else "nearest",
        observed=observed,
        null_mean=mean,
        null_sd=sd,
        z=(observed - mean) / max(sd, 1e-12),
        p=float((1 + np.count_nonzero(null >= observed)) / (1 + null.size)),
        draws=int(null.size),
        moved=float(np.mean(chosen != picked)),
    )


_matched = matched  # the name the block tests import
_unit_rows = unit_rows
