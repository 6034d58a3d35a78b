"""Nearest-neighbour matching in row blocks equals the whole-matrix argmax."""

from __future__ import annotations

import numpy as np

from companion.audit.matching import _matched, _unit_rows


def test_blockwise_nearest_matches_full_matrix() -> None:
    rng = np.random.default_rng(7)
    za = _unit_rows(rng.standard_normal((2500, 48)))
    perm = rng.permutation(2500)
    zb = _unit_rows(za[perm] + 0.02 * rng.standard_normal((2500, 48)))
    score, best = _matched(za, zb, max_units=0)  # force the nearest-neighbour branch
    full = zb @ za.T
    assert np.array_equal(best, full.argmax(axis=1))
    assert abs(score - full.max(axis=1).mean()) < 1e-5
    assert np.mean(best == perm) > 0.99  # the permutation is recovered


def test_small_assignment_equals_scipy() -> None:
    """The in-house Hungarian solver gives scipy's optimal assignment (square and rectangular)."""
    from scipy.optimize import linear_sum_assignment

    from companion.audit import matching

    rng = np.random.default_rng(3)
    for n, m in [(1, 1), (2, 5), (16, 16), (24, 40), (40, 24), (64, 64)]:
        for _ in range(5):
            cost = rng.standard_normal((n, m))
            ref_rows, ref_cols = linear_sum_assignment(cost)
            if n <= m:
                assert np.array_equal(matching._hungarian(cost), ref_cols)
            else:
                assert np.array_equal(matching._hungarian(cost.T)[ref_cols], ref_rows)
            rows, cols = matching.assignment(cost)
            assert np.array_equal(rows, ref_rows) and np.array_equal(cols, ref_cols)
