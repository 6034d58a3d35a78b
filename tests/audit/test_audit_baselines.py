"""The baselines' shortcuts compute exactly what they stand for: the shuffle nulls' one FFT
against the permutations applied one by one, the random-init reference's sums against the
draws themselves, and the standardized-sample Pearson against the plain one."""

from __future__ import annotations

import numpy as np
import pytest

from companion.audit.baselines import cross_layer, random_init_reference, shuffle_null
from companion.audit.metrics import Unit, cosine, pearson
from companion.audit.render import fmt


def _pair(n: int, centre: float, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two related float32 samples around `centre` (gains near one, or matrix weights)."""
    rng = np.random.default_rng(seed)
    a = centre + spread * rng.standard_normal(n)
    b = centre + spread * (0.6 * (a - centre) / spread + rng.standard_normal(n))
    return a.astype(np.float32), b.astype(np.float32)


@pytest.mark.parametrize(("n", "centre", "spread"), [(4096, 0.0, 0.02), (577, 1.0, 0.004)])
def test_the_shuffle_nulls_are_the_permutations_applied_one_by_one(
    n: int, centre: float, spread: float
) -> None:
    a, b = _pair(n, centre, spread)
    nulls = shuffle_null(a, b, 40, seed=3)
    assert nulls is not None
    r_null, c_null = nulls
    rng = np.random.default_rng([3, n, 7])  # the draws the null documents: a shuffle of b...
    shuffled = b.astype(np.float64)[rng.permutation(n)]
    shifts = rng.choice(n, size=40, replace=False)  # ...then distinct cyclic shifts of it
    for k, s in enumerate(shifts):
        moved = np.roll(shuffled, -int(s))  # a[i] against shuffled[(i + s) % n]
        assert r_null.values[k] == pytest.approx(pearson(a, moved), abs=1e-12)
        assert c_null.values[k] == pytest.approx(cosine(a, moved), abs=1e-12)
    assert r_null.sd > 0 and abs(r_null.mean) < 4 * r_null.sd


@pytest.mark.parametrize(("mean", "std"), [(0.001, 0.02), (1.0, 0.01), (-2.0, 0.1)])
def test_the_random_init_reference_is_that_of_the_draws(mean: float, std: float) -> None:
    n, seed = 3000, 5
    rng = np.random.default_rng([seed, n, 11])
    centre = mean if abs(mean) > 3 * std else 0.0
    x = centre + std * rng.standard_normal(n)
    y = centre + std * rng.standard_normal(n)
    cos, r = random_init_reference(mean, std, n, seed)
    assert cos == pytest.approx(cosine(x, y), abs=1e-12)
    assert r == pytest.approx(pearson(x, y), abs=1e-12)


def test_standardized_samples_give_the_plain_pearson_and_fall_back_on_bad_values() -> None:
    a, b = _pair(2048, 0.0, 0.02)
    unit = Unit()
    assert unit.pearson(a, b) == pytest.approx(pearson(a, b), abs=1e-14)
    bad = b.copy()
    bad[7] = np.nan
    assert unit.pearson(a, bad) == pearson(a, bad)  # NaN positions dropped, as pearson does
    assert unit.pearson(a, np.ones(2048, np.float32)) is None  # constant: undefined
    others = [_pair(2048, 0.0, 0.02, seed=s)[1] for s in (1, 2, 3)]
    plain = [pearson(a, o) for o in others]
    got = cross_layer(a, others, unit)
    assert got is not None and got[2] == 3
    assert got[0] == pytest.approx(float(np.mean(plain)), abs=1e-14)


def test_a_figure_that_rounds_to_zero_shows_no_sign() -> None:
    assert [fmt(-1e-19), fmt(-0.0004), fmt(-0.0006), fmt(None)] == [
        "0.000",
        "0.000",
        "-0.001",
        "n/a",
    ]
