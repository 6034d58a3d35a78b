"""Calibration of the shape-changing statistics on independent random pairs.

The vocabulary row test and the width assignments (hidden dims by embedding columns, B's
fewer units against A's, B's K/V heads against A's heads and group means) must give
uniform p-values when A and B are unrelated, and their decision rules a false "related"
rate of at most 1 %.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import kstest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from companion.audit.headdim import channel_pairs, channel_survival
from companion.audit.hidden import Calibrated, relabel_test, stouffer
from companion.audit.kvheads import kv_test, per_head
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


KV_SHAPES = [(4, 2, 16, 64), (8, 2, 8, 64), (4, 1, 16, 48), (6, 3, 8, 32), (2, 4, 8, 32)]


def _kv_layer(rng: np.random.Generator, shape: tuple[int, ...], early: bool) -> Calibrated:
    """One layer's K/V head assignment: A's heads and B's regrouped heads, unrelated."""
    kv_a, kv_b, d, hidden = shape
    r = rng.standard_normal((hidden, 12)) / np.sqrt(12)
    heads_a = per_head(*(rng.standard_normal((kv_a * d, hidden)) @ r for _ in "kv"), d)
    kb, vb = rng.standard_normal((2, kv_b * d, hidden))
    t, _ = kv_test(
        heads_a, lambda s: per_head(kb[:, s] @ r, vb[:, s] @ r, d), hidden, rng, _none, early
    )
    return t


def _none() -> None:
    """No cancellation check."""


def _decided(tests: list[Any]) -> tuple[list[float], float]:
    """The layer tests' p-values and whether their Stouffer z and gap would call them related."""
    z = stouffer([t.z for t in tests]) or 0.0
    gap = float(np.median([t.observed - t.null.mean() for t in tests]))
    return [t.p for t in tests], float(z >= RELATED_Z and gap >= MIN_GAP)


def _assert_calibrated(pair: Callable[[int, bool], tuple[list[float], float]], seed: int) -> None:
    """Uniform p over PAIRS independent pairs; false-related rate <= 1 %, early stop or not."""
    with threadpool_limits(limits=1):
        full = [pair(s, False) for s in range(PAIRS)]
        stopped = [pair(s, True) for s in range(PAIRS)]  # the audit's early stop
    ps = np.array([p for row, _ in full for p in row])
    assert kstest(_jitter(ps, 19, np.random.default_rng(seed)), "uniform").pvalue > 0.01
    assert np.mean([rel for _, rel in full]) <= 0.01
    assert np.mean([rel for _, rel in stopped]) <= 0.01


def _kv_pair(seed: int, early: bool) -> tuple[list[float], float]:
    """p of two layers' K/V tests (combined as width.py does) and the rule's call."""
    rng = np.random.default_rng([seed, 5])
    return _decided([_kv_layer(rng, KV_SHAPES[seed % len(KV_SHAPES)], early) for _ in range(2)])


def test_kv_head_assignment_is_uniform_on_independent_models() -> None:
    _assert_calibrated(_kv_pair, 2)


DIM_SHAPES = [(4, 4, 16, 12, 64), (4, 2, 16, 8, 48), (2, 1, 8, 6, 32)]  # heads, kv, da, db, hidden


def _dim_layer(rng: np.random.Generator, shape: tuple[int, ...], early: bool) -> list[Calibrated]:
    """One layer's QK and VO channel assignments: A's channels and B's fewer, unrelated."""
    heads, kv, da, db, hidden = shape
    r = rng.standard_normal((hidden, 16)) / np.sqrt(16)

    def sides(d: int) -> list[np.ndarray]:
        return [rng.standard_normal((n * d, hidden)) for n in (heads, kv, kv, heads)]

    fa = channel_pairs(*(x @ r for x in sides(da)), heads, kv, da)
    q, k, v, o = sides(db)
    out = []
    for part, name in ((0, "qk"), (1, "vo")):

        def feature_b(s: np.ndarray, part: int = part) -> np.ndarray:
            return channel_pairs(q[:, s] @ r, k[:, s] @ r, v[:, s] @ r, o[:, s] @ r, heads, kv, db)[
                part
            ]

        u = channel_survival(name, (0, 0), fa[part], feature_b, hidden, (da, db), rng, _none, early)
        out.append(u.test)
    return out


def _dim_pair(seed: int, early: bool) -> tuple[list[float], float]:
    """p of two layers' channel tests (four tests, combined as width.py does) and the call."""
    rng = np.random.default_rng([seed, 7])
    return _decided([t for _ in range(2) for t in _dim_layer(rng, DIM_SHAPES[seed % 3], early)])


def test_head_dim_channel_assignment_is_uniform_on_independent_models() -> None:
    _assert_calibrated(_dim_pair, 3)
