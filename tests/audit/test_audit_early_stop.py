"""The unit-matching test on a sample of B's units, stopped early: still calibrated."""

from __future__ import annotations

import numpy as np
from scipy.stats import kstest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from companion.audit.hidden import align_hidden
from companion.audit.matching import MIN_DRAWS, match_test, sample_units
from companion.audit.verdict import PERM_Z

SHAPES = [(16, 40), (24, 64), (20, 48)]  # (features, units): more units than the sample
SAMPLE = 12
PAIRS = 240


def _pair(seed: int, derived: bool) -> tuple[np.ndarray, np.ndarray]:
    """Unit features of A and of B (unrelated, or A's units permuted plus noise)."""
    rng = np.random.default_rng([seed, 3])
    k, units = SHAPES[seed % len(SHAPES)]
    mean = rng.uniform(-0.02, 0.02)
    fa = mean + 0.02 * rng.standard_normal((units, k))
    if derived:
        fb = fa[rng.permutation(units)] + 0.01 * rng.standard_normal(fa.shape)
    else:
        fb = mean + 0.02 * rng.standard_normal((units, k))
    return fa, fb


def test_sample_is_fixed_sorted_and_bounded() -> None:
    s = sample_units(5632, 256, 64)
    assert s.size == 256 and np.all(np.diff(s) > 0) and s[-1] < 5632
    assert np.array_equal(s, sample_units(5632, 256, 64))  # reproducible
    assert np.array_equal(sample_units(40, 256, 64), np.arange(40))  # few units: all of them


def test_sampled_test_p_values_are_uniform() -> None:
    with threadpool_limits(limits=1):
        ps = []
        for seed in range(PAIRS):
            m = match_test(*_pair(seed, False), "mlp_units", 1, 19, 512, sample=SAMPLE)
            assert m is not None and m.units == SAMPLE and m.draws == 19
            ps.append(m.p)
    u = np.clip(np.array(ps) - np.random.default_rng(0).uniform(0, 1 / 20, PAIRS), 0, 1)
    assert kstest(u, "uniform").pvalue > 0.01


def test_early_stop_false_derived_rate_and_power() -> None:
    """The stopping rule on the sampled test: false 'derived' <= 1 %, derived pairs kept."""
    with threadpool_limits(limits=1):
        null = [
            match_test(*_pair(s, False), "mlp_units", 1, 19, 512, early=True, sample=SAMPLE)
            for s in range(PAIRS)
        ]
        alt = [
            match_test(*_pair(s, True), "mlp_units", 1, 19, 512, early=True, sample=SAMPLE)
            for s in range(40)
        ]
    assert all(m is not None for m in null + alt)
    zs = np.array([m.z for m in null if m is not None])
    assert np.mean(zs >= PERM_Z) <= 0.01
    assert np.mean([m.draws < 19 for m in null if m is not None]) > 0.3  # it does stop
    assert all(m.z >= PERM_Z and m.moved > 0.9 for m in alt if m is not None)
    # a related pair never stops: every draw, so p keeps its resolution (1/20)
    assert all(m.draws == 19 and m.p == 1 / 20 for m in alt if m is not None)
    assert min(m.draws for m in null if m is not None) == MIN_DRAWS


def _hidden_pair(seed: int, derived: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hidden profiles (dims x features) of A and B, and the permutation B applied."""
    rng = np.random.default_rng([seed, 5])
    dims, feats = SHAPES[seed % len(SHAPES)][::-1]
    pa = rng.standard_normal((dims, feats))
    perm = rng.permutation(dims)
    pb = (
        pa[perm] + 0.1 * rng.standard_normal(pa.shape) if derived else rng.standard_normal(pa.shape)
    )
    return pa, pb, perm


def test_hidden_test_on_sampled_dims_is_calibrated_and_recovers_every_dim() -> None:
    """The hidden test on a sample of B dims: uniform p, no false derived, full permutation."""
    with threadpool_limits(limits=1):
        ps, zs = [], []
        for seed in range(PAIRS):
            pa, pb, _ = _hidden_pair(seed, False)
            h = align_hidden(pa, pb, "test", 19, seed, 512, sample=SAMPLE)
            assert h is not None and h.test.chosen.size == pa.shape[0]
            ps.append(h.test.p)
            zs.append(h.test.z)
        for seed in range(40):
            pa, pb, perm = _hidden_pair(seed, True)
            h = align_hidden(pa, pb, "test", 19, seed, 512, early="inside", sample=SAMPLE)
            assert h is not None and h.test.z >= PERM_Z and h.test.null.size == 19
            assert np.array_equal(h.test.chosen, perm)  # every B dim matched, not the sample
    u = np.clip(np.array(ps) - np.random.default_rng(1).uniform(0, 1 / 20, PAIRS), 0, 1)
    assert kstest(u, "uniform").pvalue > 0.01
    assert np.mean(np.array(zs) >= PERM_Z) <= 0.01
