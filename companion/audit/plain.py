"""When the symmetry tests cannot change the verdict: every matrix of B already matches A's
element by element.

A permutation, rotation or rescale hiding in B would leave the matrices it touches
uncorrelated element-wise with A's; when every matrix's full-tensor Pearson is at least
R_PLAIN (an independent pair sits at 0 ± 1/sqrt(n), so even the smallest matrix allowed is
8 null sd above it), nothing is hiding and the plain comparison already says "derived" in
every role group. The unit, head and hidden-alignment tests are then skipped (the stop is in
the "derived" direction only), and only B - A's deltas are measured through the identity
alignment, for naming the derivation. `symmetry_tests="always"` runs the tests anyway.
"""

from __future__ import annotations

import numpy as np

from companion.audit.aligned import hidden_size, layer_deltas
from companion.audit.metrics import PairAccumulator
from companion.audit.pairing import Pair, Side
from companion.audit.schemas import AlignedEvidence
from companion.audit.symview import Model

R_PLAIN = 0.5
MIN_ELEMENTS = 256  # smaller matrices are too weak a witness: the tests run
MIN_MATRICES = 2


def plain_match(
    a: Side, pairs: list[Pair], accs: list[PairAccumulator], unmatched: list[tuple[str, str, str]]
) -> str | None:
    """Why the symmetry tests cannot change the verdict, or None when they must run."""
    if any(side in ("a", "b") for _, side, _ in unmatched):
        return None  # a tensor without a counterpart: a changed shape may hide a symmetry
    rs = []
    for pair, acc in zip(pairs, accs, strict=True):
        shape = a.ref(pair.name_a).info.shape
        if len(shape) > 2:
            return None  # stacked experts: their order is a symmetry of its own
        if len(shape) < 2:
            continue
        r = acc.moments.pearson()
        if r is None or r < R_PLAIN or shape[0] * shape[1] < MIN_ELEMENTS:
            return None
        rs.append(r)
    if len(rs) < MIN_MATRICES:
        return None
    return (
        f"symmetry tests not run: all {len(rs)} matrices already match A's element-wise "
        f"(full-tensor Pearson {min(rs):.3f} or more, at least {R_PLAIN}), so no permutation, "
        "rotation or rescale can be hiding and the tests cannot change the verdict "
        "(symmetry_tests=always runs them)"
    )


def identity_evidence(
    a_side: Side, b_side: Side, a_to_b: dict[int, int], layers: list[int], note: str
) -> AlignedEvidence | None:
    """B - A's deltas through the identity alignment, with the note saying why no tests ran."""
    a, b = Model(a_side), Model(b_side)
    hidden = hidden_size(a)
    if hidden is None or hidden != hidden_size(b):
        return None
    perm = np.arange(hidden)
    deltas = [d for la in layers for d in layer_deltas(a, b, la, a_to_b[la], perm)]
    return AlignedEvidence(
        deltas=deltas, skipped=sorted(set(a.skipped + b.skipped)), stopped_early=note
    )
