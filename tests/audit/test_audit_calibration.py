"""Calibration: on independent random models the matched-statistic p-values are uniform."""

from __future__ import annotations

import numpy as np
from scipy.stats import kstest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from companion.audit.hidden import MIN_DRAWS, align_hidden, normal_sf, relabel_test, stouffer
from companion.audit.matching import match_test
from companion.audit.verdict import PERM_Z

SHAPES = [(16, 24), (24, 40), (32, 20), (20, 48)]  # (hidden, units)
PAIRS = 240


def _pair_ps(seed: int) -> tuple[float, float, float, float]:
    """p of the hidden alignment, the relabel unit test, the moment unit test and Stouffer z."""
    rng = np.random.default_rng(seed)
    hidden, units = SHAPES[seed % len(SHAPES)]
    mean = rng.uniform(-0.02, 0.02)  # shared init recipe: same mean and scale on both sides
    wa = mean + 0.02 * rng.standard_normal((units, hidden))
    wb = mean + 0.02 * rng.standard_normal((units, hidden))
    proj = rng.standard_normal((hidden, 8))
    h = align_hidden(wa.T, wb.T, "test", 19, seed, 512)
    assert h is not None
    t = relabel_test(wa @ proj, lambda s: wb[:, s] @ proj, hidden, 19, rng, 512)
    m = match_test(wa @ proj, wb @ proj, "mlp_units", 1, 19, 512)
    assert m is not None
    z = stouffer([t.z, h.test.z])
    assert z is not None
    return h.test.p, t.p, m.p, z


def test_null_p_values_are_uniform_and_false_derived_rare() -> None:
    with threadpool_limits(limits=1):
        rows = [_pair_ps(seed) for seed in range(PAIRS)]
    ph, pt, pm, zs = (np.array(c) for c in zip(*rows, strict=True))
    # empirical p with 19 draws is discrete: jitter inside its cell before the KS test
    rng = np.random.default_rng(0)
    for p in (ph, pt, pm):
        u = np.clip(p - rng.uniform(0, 1 / 20, p.size), 0, 1)
        assert kstest(u, "uniform").pvalue > 0.01
    assert kstest([normal_sf(z) for z in zs], "uniform").pvalue > 0.01
    assert np.mean(zs >= PERM_Z) <= 0.01  # false "derived" rate at the default threshold


def _early_z(seed: int, derived: bool) -> tuple[float, int]:
    """Stouffer z of the early-stopped hidden and unit tests, and the draws they used."""
    rng = np.random.default_rng([seed, 1])
    hidden, units = SHAPES[seed % len(SHAPES)]
    wa = 0.02 * rng.standard_normal((units, hidden))
    wb = (
        wa + 0.01 * rng.standard_normal(wa.shape)
        if derived
        else 0.02 * rng.standard_normal(wa.shape)
    )
    proj = rng.standard_normal((hidden, 8))
    h = align_hidden(wa.T, wb.T, "test", 19, seed, 512, early=True)
    assert h is not None
    t = relabel_test(wa @ proj, lambda s: wb[:, s] @ proj, hidden, 19, rng, 512, early=True)
    z = stouffer([t.z, h.test.z])
    assert z is not None
    return z, int(h.test.null.size + t.null.size)


def test_early_stop_false_derived_rate() -> None:
    """The stopping rule (hidden.decisive) over independent pairs: false 'derived' ≤ 1 %."""
    with threadpool_limits(limits=1):
        null = [_early_z(seed, False) for seed in range(PAIRS)]
        alt = [_early_z(seed, True) for seed in range(40)]
    zs = np.array([z for z, _ in null])
    assert np.mean(zs >= PERM_Z) <= 0.01
    assert np.mean([n < 38 for _, n in null]) > 0.3  # the rule does stop independent pairs
    assert all(z >= PERM_Z for z, _ in alt)  # derived pairs stay derived
    assert min(n for _, n in alt) <= 2 * MIN_DRAWS  # and decisive ones stop at the minimum
