"""Fine-grained MoE upcycling: each expert holds a subset of A's dense FFN units.

Qwen-MoE-style upcycling splits (and may re-order) A's FFN units among narrower experts.
Each expert's units are assigned to A's units on projected up/gate rows and down columns;
null: the expert's hidden dims relabelled, the same assignment (as width.py).
"""

from __future__ import annotations

from collections.abc import Callable
from math import sqrt

import numpy as np

from companion.audit.alignment import Key
from companion.audit.hidden import relabel_test
from companion.audit.matching import matched, unit_rows
from companion.audit.pairing import Side
from companion.audit.rowstats import Array
from companion.audit.sketch import read_whole
from companion.audit.symview import ASSIGN, DRAWS, K_UNIT
from companion.audit.width_types import Survival

MAX_SPLIT_EXPERTS = 16  # experts assigned per layer (each a full calibrated test)


def _parts(side: Side, layer: int, expert: int | None) -> list[Array] | None:
    """up, down and (if present) gate of a dense FFN or an expert, whole, in float32."""
    role = "expert" if expert is not None else None
    out = []
    for slot in ("up", "down", "gate"):
        name = side.by_key.get(Key(role or slot, slot, layer, expert, "weight"))
        if name is None:
            if slot == "gate":
                continue
            return None
        x = read_whole(side.ref(name), name)
        if x is None or x.ndim != 2:
            return None
        out.append(x.T if slot == "down" else x)  # every part: units x hidden
    return out


def _features(parts: list[Array], proj: Array) -> Array:
    """Per unit: its projected up, down and gate vectors, side by side."""
    return np.concatenate([p.astype(np.float64) @ proj for p in parts], axis=1)


def split_expert(
    a: Side,
    b: Side,
    la: int,
    lb: int,
    expert: int,
    rng: np.random.Generator,
    check: Callable[[], None],
) -> Survival | None:
    """Assign one narrow expert's units to A's dense units (None when shapes do not fit)."""
    pa, pb = _parts(a, la, None), _parts(b, lb, expert)
    if pa is None or pb is None or len(pa) != len(pb):
        return None
    hidden = pa[0].shape[1]
    if any(x.shape[1] != hidden for x in pa + pb) or pb[0].shape[0] >= pa[0].shape[0]:
        return None
    proj = rng.standard_normal((hidden, K_UNIT)) / sqrt(K_UNIT)
    fa = _features(pa, proj)

    def feature_b(s: Array) -> Array:
        return _features([p[:, s] for p in pb], proj)

    t = relabel_test(fa, feature_b, hidden, DRAWS, rng, ASSIGN, check, True)
    za = unit_rows(fa)
    sims = np.sum(za[t.chosen] * unit_rows(feature_b(np.arange(hidden))), axis=1)
    zb_null = unit_rows(feature_b(rng.permutation(hidden)))
    _, null_chosen = matched(za, zb_null, ASSIGN)
    thr = float(np.quantile(np.sum(za[null_chosen] * zb_null, axis=1), 0.99))
    units_a, units_b = pa[0].shape[0], pb[0].shape[0]
    first = [int(x) for x in t.chosen[:8]]
    survivors = int(np.count_nonzero(sims > thr))
    return Survival(f"expert {expert}", la, lb, units_a, units_b, units_b, survivors, t, first)
