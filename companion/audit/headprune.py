"""Attention heads removed (Minitron-style): which of A's heads survive in B.

Heads are described by rotation-invariant per-head products (W_Q^hᵀW_K^h and W_O^hW_V^h,
sketched, as heads.py does), restricted to the hidden dims that survive in B, and B's
heads are assigned to A's; null: B's hidden dims relabelled, the same assignment.
"""

from __future__ import annotations

from collections.abc import Callable
from math import sqrt

import numpy as np

from companion.audit.heads import _head_features, _Heads
from companion.audit.hidden import relabel_test
from companion.audit.kvheads import head_dim
from companion.audit.matching import matched, unit_rows
from companion.audit.rowstats import Array
from companion.audit.sketch import keep_budget
from companion.audit.symview import ASSIGN, DRAWS, K_HEAD, Model
from companion.audit.width_types import Survival


def _layout(m: Model, layer: int, hidden: int, head_dim: int | None) -> _Heads | None:
    """Heads of a layer from its q/k/v/o shapes (MHA or GQA), given or from config head dim."""
    names = [m.matrix(r, layer) for r in ("q", "k", "v", "o")]
    if any(n is None for n in names):
        return None
    q, k, v, o = (m.shape(n) for n in names if n is not None)
    if q[1] != hidden or k[1] != hidden or v != k or o != (hidden, q[0]):
        return None
    if head_dim is None:
        cfg = m.side.ckpt.config
        heads = cfg.get("num_attention_heads")
        if not isinstance(heads, int) or heads < 1 or q[0] % heads:
            return None
        head_dim = q[0] // heads
    if q[0] % head_dim or k[0] % head_dim:
        return None
    return _Heads(q[0] // head_dim, k[0] // head_dim, head_dim)


def _restricted(m: Model, layer: int, cols: Array, r: Array) -> Array:
    """A projection over A's hidden dims reading only `cols` (A dim of each B dim), gain-folded."""
    h = m.width("q", layer)
    g = m.gain("attn_norm", layer, h)
    out = np.zeros((h, r.shape[1]))
    out[cols] = g[cols, None] * r
    return out


def _features_a(
    m: Model, layer: int, lay: _Heads, cols: Array, r1: Array, r2: Array
) -> Array | None:
    """A's per-head invariants over the surviving dims."""
    q, k, v = (
        m.scan(role, layer, right=_restricted(m, layer, cols, r))
        for role, r in (("q", r1), ("k", r2), ("v", r2))
    )
    h = m.width("o", layer, axis=0)
    left = np.zeros((h, r1.shape[1]))
    left[cols] = r1
    o = m.scan("o", layer, left=left)
    if q is None or k is None or v is None or o is None or o.left is None:
        return None
    qs, ks, vs = (np.asarray(x.right, dtype=np.float64) for x in (q, k, v))
    return _head_features(qs, ks, vs, np.asarray(o.left).T, lay, lay.heads)


def head_match(
    a: Model,
    b: Model,
    la: int,
    lb: int,
    cols: Array,
    rng: np.random.Generator,
    check: Callable[[], None],
) -> Survival | None:
    """Assign B's heads to A's when B has fewer (or the hidden width changed)."""
    ha = a.width("q", la)
    lay_a = _layout(a, la, ha, None)
    if lay_a is not None and head_dim(b, lb) not in (None, lay_a.d):
        return None  # head_dim changed: B's rows are not whole heads of A's width
    lay_b = _layout(b, lb, cols.size, lay_a.d if lay_a else None)
    if lay_a is None or lay_b is None or lay_b.heads > lay_a.heads or lay_b.heads < 2:
        return None
    if lay_b.heads == lay_a.heads and cols.size == ha:
        return None  # nothing removed: the ordinary head test covers it
    r1, r2 = (rng.standard_normal((cols.size, K_HEAD)) / sqrt(K_HEAD) for _ in range(2))
    fa = _features_a(a, la, lay_a, cols, r1, r2)
    count = keep_budget(lay_b.d * cols.size, lay_b.heads)  # B heads held raw for the null
    kv_rows = (lay_b.group(count - 1) + 1) * lay_b.d
    raw = [b.lead_rows("q", lb, count * lay_b.d)]
    raw += [b.lead_rows(r, lb, kv_rows) for r in ("k", "v")]
    o = b.scan("o", lb, keep_cols=count * lay_b.d)
    if fa is None or any(x is None for x in raw) or o is None or o.cols is None:
        return None
    g = b.gain("attn_norm", lb, cols.size)
    q, k, v = (x * g for x in raw if x is not None)
    ob = o.cols.astype(np.float64)

    def feature_b(s: Array) -> Array:
        qs, ks, vs = q[:, s] @ r1, k[:, s] @ r2, v[:, s] @ r2
        return _head_features(qs, ks, vs, ob[s].T @ r1, lay_b, count)

    t = relabel_test(fa, feature_b, cols.size, DRAWS, rng, ASSIGN, check, True)
    za = unit_rows(fa)
    sims = np.sum(za[t.chosen] * unit_rows(feature_b(np.arange(cols.size))), axis=1)
    zb_null = unit_rows(feature_b(rng.permutation(cols.size)))
    _, null_chosen = matched(za, zb_null, ASSIGN)
    thr = float(np.max(np.sum(za[null_chosen] * zb_null, axis=1)))
    survivors = int(np.count_nonzero(sims > thr))
    first = [int(x) for x in t.chosen[:8]]
    return Survival("heads", la, lb, lay_a.heads, lay_b.heads, count, survivors, t, first)
