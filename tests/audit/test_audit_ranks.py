"""Spearman's ranks: the 16-bit radix order for bfloat16 and float16 samples gives exactly the
ranks of the general sort (average ranks for ties, -0.0 tied with +0.0)."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from companion.audit.metrics import _words16, ranks

Array = np.ndarray[Any, Any]
NARROW = {"bf16": ml_dtypes.bfloat16, "f16": np.float16, "f32": np.float32, "f64": np.float64}


def average_ranks(x: Array) -> Array:
    """Reference: each value's average rank among equal values, from np.unique."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.asarray((starts + (counts + 1) / 2.0)[inverse], dtype=np.float64)


def sample(kind: str, n: int, seed: int, zeros: float) -> Array:
    """n values of a dtype as float64, with ties, signed zeros and infinities mixed in."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * rng.choice([1e-3, 1.0, 1e3], n)).astype(NARROW[kind])
    x = x.astype(np.float64)
    x[rng.random(n) < zeros] = 0.0
    x[rng.random(n) < zeros] = -0.0
    x[rng.random(n) < 0.01] = np.inf
    x[rng.random(n) < 0.01] = -np.inf
    return x


@given(
    kind=st.sampled_from(sorted(NARROW)),
    n=st.integers(0, 3000),
    seed=st.integers(0, 2**32 - 1),
    zeros=st.sampled_from([0.0, 0.05, 0.5]),
)
def test_ranks_match_the_reference(kind: str, n: int, seed: int, zeros: float) -> None:
    x = sample(kind, n, seed, zeros)
    assert np.array_equal(ranks(x), average_ranks(x))


def test_the_radix_order_is_taken_exactly_for_16_bit_values() -> None:
    for kind, radix in (("bf16", True), ("f16", True), ("f32", False), ("f64", False)):
        x = sample(kind, 16384, 3, 0.05)
        assert (_words16(x) is not None) is radix, kind
    almost = sample("bf16", 16384, 4, 0.0)
    almost[-1] = 1.0 + 2.0**-30  # one value off the bfloat16 grid, past the prefix checked
    assert _words16(almost) is None
    assert np.array_equal(ranks(almost), average_ranks(almost))
