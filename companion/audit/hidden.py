"""Calibrated assignment tests and the residual-stream (hidden-dimension) alignment.

Every matched statistic here is tested against the *same* procedure run on unrelated data,
so the selection bias of the assignment is in the null too. Two nulls are used:

- row mixing: B's rows mixed by a random orthogonal map, which keeps every column mean and
  covariance of B (for iid rows this is exactly B's distribution, with the link to A cut);
- hidden relabelling: B's hidden coordinates relabelled at random before the features are
  taken. Under independence B's hidden labels are arbitrary with respect to A's, so the
  observed and null statistics are exchangeable and the empirical p is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from math import erfc, sqrt
from typing import Any, Literal

import numpy as np

from companion.audit.matching import MIN_DRAWS as MIN_DRAWS  # re-exported
from companion.audit.matching import Z_DECISIVE as Z_DECISIVE
from companion.audit.matching import decisive, matched, mix_rows, sample_units, unit_rows

Array = np.ndarray[Any, Any]
SKETCH = 128
Early = bool | Literal["inside"]  # stop the null early: no, both ways, or only when inside


@dataclass(frozen=True)
class Calibrated:
    """A matched statistic, its null draws, z and empirical p, and the chosen A index per B."""

    observed: float
    null: Array
    chosen: Array

    @property
    def z(self) -> float:
        """z of the observation against the null draws."""
        return float((self.observed - self.null.mean()) / max(float(self.null.std()), 1e-9))

    @property
    def p(self) -> float:
        """Empirical one-sided p with +1 smoothing."""
        return float((1 + np.count_nonzero(self.null >= self.observed)) / (1 + self.null.size))


def _noop() -> None:
    """No cancellation check."""


def _draws(count: int, check: Callable[[], None]) -> Iterator[int]:
    """range(count), calling `check` (the job's cancel check) before every draw."""
    for k in range(count):
        check()
        yield k


def null_draws(
    observed: float, draw: Callable[[], float], draws: int, check: Callable[[], None], early: Early
) -> Array:
    """Up to `draws` null draws; with `early`, stop once `decisive` says so ("inside": only
    when the observation sits inside the draws, so a related pair keeps every draw)."""
    values: list[float] = []
    for _ in _draws(draws, check):
        values.append(draw())
        if early and decisive(observed, np.asarray(values), above=early is True):
            break
    return np.asarray(values)


def normal_sf(z: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * erfc(z / sqrt(2.0))


def stouffer(zs: list[float]) -> float | None:
    """Stouffer's combination of per-layer z (calibrated in tests/audit/test_audit_calibration)."""
    return float(sum(zs) / sqrt(len(zs))) if zs else None


def rotation_test(
    fa: Array,
    fb: Array,
    draws: int,
    rng: np.random.Generator,
    max_units: int,
    check: Callable[[], None] = _noop,
    early: Early = False,
) -> Calibrated:
    """Match B rows to A rows; null: the same matching after mixing B's rows (mix_rows)."""
    za = unit_rows(fa)
    observed, chosen = matched(za, unit_rows(fb), max_units)

    def draw() -> float:
        return matched(za, unit_rows(standardize(mix_rows(fb, rng))), max_units)[0]

    return Calibrated(observed, null_draws(observed, draw, draws, check, early), chosen)


def sketch(x: Array, k: int, seed: int) -> Array:
    """Random projection of the columns of x (rows kept) to at most k dims."""
    if x.shape[1] <= k:
        return x
    rng = np.random.default_rng([seed, x.shape[1], 29])
    return np.asarray(x @ rng.standard_normal((x.shape[1], k)) / sqrt(k))


def standardize(x: Array) -> Array:
    """Z-score every column (feature) across rows; constant columns become zero."""
    sd = x.std(axis=0)
    out: Array = np.divide(x - x.mean(axis=0), sd, out=np.zeros_like(x), where=sd > 0)
    return out


@dataclass(frozen=True)
class HiddenAlignment:
    """The recovered hidden permutation (A dim j <-> B dim perm[j]) with its calibrated test."""

    perm: Array
    test: Calibrated
    source: str
    dims: int

    @property
    def one_to_one(self) -> int:
        """B dims whose matched A dim no other B dim chose."""
        counts = np.unique(self.test.chosen, return_counts=True)[1]
        return int(np.count_nonzero(counts == 1))

    @property
    def moved(self) -> int:
        """Dims that sit at a different index in B."""
        return int(np.count_nonzero(self.perm != np.arange(self.perm.size)))


def align_hidden(
    pa: Array,
    pb: Array,
    source: str,
    draws: int,
    seed: int,
    max_units: int,
    check: Callable[[], None] = _noop,
    early: Early = False,
    sample: int = 0,
) -> HiddenAlignment | None:
    """Match hidden dims by their profiles (dims x features); None if nothing to match.

    Every B dim is matched for the permutation; with `sample`, the calibrated test matches
    a fixed sample of that many B dims (observation and null alike, nearest match)."""
    if pa.shape != pb.shape or pa.shape[0] < 2 or pa.shape[1] < 2:
        return None
    both = np.concatenate([standardize(pa), standardize(pb)], axis=0)
    sk = sketch(both, SKETCH, seed)
    fa, fb = standardize(sk[: pa.shape[0]]), standardize(sk[pa.shape[0] :])
    rng = np.random.default_rng([seed, pa.shape[0], 31])
    picked = sample_units(pa.shape[0], sample, seed)
    if picked.size < pa.shape[0]:
        chosen = matched(unit_rows(fa), unit_rows(fb), max_units)[1]
        sub = rotation_test(fa, standardize(fb[picked]), draws, rng, 0, check, early)
        test = Calibrated(sub.observed, sub.null, chosen)
    else:
        test = rotation_test(fa, fb, draws, rng, max_units, check, early)
    # matched() maps every B dim to an A dim; invert to A dim -> B dim
    perm = np.arange(pa.shape[0])
    perm[test.chosen] = np.arange(pa.shape[0])  # nearest matching may leave A dims unused
    return HiddenAlignment(perm, test, source, pa.shape[0])


def relabel_test(
    fa: Array,
    feature_b: Callable[[Array], Array],
    hidden: int,
    draws: int,
    rng: np.random.Generator,
    max_units: int,
    check: Callable[[], None] = _noop,
    early: Early = False,
) -> Calibrated:
    """Match B units to A units; null: the same matching after relabelling B's hidden dims.

    `feature_b(sigma)` gives B's unit features with B's hidden coordinate j read at
    sigma[j]; the observation uses the identity (B already aligned to A).
    """
    za = unit_rows(fa)
    observed, chosen = matched(za, unit_rows(feature_b(np.arange(hidden))), max_units)

    def draw() -> float:
        return matched(za, unit_rows(feature_b(rng.permutation(hidden))), max_units)[0]

    return Calibrated(observed, null_draws(observed, draw, draws, check, early), chosen)
