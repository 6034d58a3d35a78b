"""Calibration of the shape-changing statistics on independent random pairs.

The vocabulary row test and the width assignments (hidden dims by embedding columns, B's
fewer units against A's) must give uniform p-values when A and B are unrelated, and their
decision rules a false "related" rate of at most 1 %.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kstest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from companion.audit.hidden import relabel_test, stouffer
from companion.audit.rowstats import MIN_GAP, RELATED_Z, row_test

PAIRS = 240
ROW_SHAPES = [(64, 16), (128, 24), (200, 32), (96, 48)]  # (shared rows, hidden)
WIDTH_SHAPES = [(16, 12, 24, 18), (24, 16, 40, 30), (20, 20, 32, 20)]  # ha, hb, units a, b


def _jitter(p: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Spread a discrete empirical p inside its cell before a KS test."""
    return np.clip(p - rng.uniform(0, 1 / (draws + 1), p.size), 0, 1)


def test_row_test_is_uniform_on_independent_tables() -> None:
    rng = np.random.default_rng(0)
    ps, related = [], 0
    for seed in range(PAIRS):
        rows, hidden = ROW_SHAPES[seed % len(ROW_SHAPES)]
        mean = rng.uniform(-0.02, 0.02)  # a shared init recipe on both sides
        xa = mean + 0.02 * rng.standard_normal((rows, hidden))
        xb = mean + 0.02 * rng.standard_normal((rows, hidden))
        t = row_test(xa, xb, seed)
        assert t is not None
        ps.append(t.p)
        related += t.related
    assert kstest(_jitter(np.array(ps), 199, rng), "uniform").pvalue > 0.01
    assert related / PAIRS <= 0.01


def _width_pair(seed: int) -> tuple[float, float, float]:
    """p of the hidden assignment, p of the unit assignment, and the rule's combined z."""
    rng = np.random.default_rng([seed, 3])
    ha, hb, ua, ub = WIDTH_SHAPES[seed % len(WIDTH_SHAPES)]
    tokens = 64
    ea, eb = rng.standard_normal((ha, tokens)), rng.standard_normal((hb, tokens))
    h = relabel_test(ea, lambda s: eb[:, s], tokens, 19, rng, 512)
    cols = h.chosen  # B's dims read through the recovered map, as width.py does
    wa, wb = rng.standard_normal((ua, ha)), rng.standard_normal((ub, hb))
    proj = rng.standard_normal((hb, 8))
    fa = wa[:, cols] @ proj
    u = relabel_test(fa, lambda s: wb[:, s] @ proj, hb, 19, rng, 512)
    z = stouffer([h.z, u.z]) or 0.0
    gaps = [h.observed - h.null.mean(), u.observed - u.null.mean()]
    related = z >= RELATED_Z and float(np.median(gaps)) >= MIN_GAP
    return h.p, u.p, float(related)


def test_width_assignments_are_uniform_on_independent_models() -> None:
    with threadpool_limits(limits=1):
        rows = [_width_pair(seed) for seed in range(PAIRS)]
    ph, pu, rel = (np.array(c) for c in zip(*rows, strict=True))
    rng = np.random.default_rng(1)
    for p in (ph, pu):
        assert kstest(_jitter(p, 19, rng), "uniform").pvalue > 0.01
    assert rel.mean() <= 0.01
