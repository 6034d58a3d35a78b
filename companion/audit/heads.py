"""Attention heads compared through rotation-invariant per-head products, with their null."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import sqrt

import numpy as np

from companion.audit.hidden import Calibrated, relabel_test
from companion.audit.sketch import keep_budget
from companion.audit.symview import ASSIGN, DRAWS, K_HEAD, Array, Model


@dataclass(frozen=True)
class _Heads:
    """A layer's attention layout: heads, key/value heads and head width."""

    heads: int
    kv: int
    d: int

    def group(self, h: int) -> int:
        """The key/value head serving query head h."""
        return h // max(self.heads // self.kv, 1)


def _layout(m: Model, layer: int, hidden: int) -> _Heads | None:
    """The attention layout, if q, k, v and o have consistent shapes."""
    cfg = m.side.ckpt.config
    heads = cfg.get("num_attention_heads")
    kv = cfg.get("num_key_value_heads", heads)
    names = [m.matrix(r, layer) for r in ("q", "k", "v", "o")]
    if not isinstance(heads, int) or not isinstance(kv, int) or heads < 2 or kv < 1:
        return None
    if any(n is None for n in names):
        return None
    q, k, v, o = (m.shape(n) for n in names if n is not None)
    if q[1] != hidden or k[1] != hidden or v != k or o != (hidden, q[0]):
        return None
    if q[0] % heads or k[0] % kv or q[0] // heads != k[0] // kv:
        return None
    return _Heads(heads, kv, q[0] // heads)


def _head_features(qs: Array, ks: Array, vs: Array, os_: Array, lay: _Heads, count: int) -> Array:
    """Per head, sketches of W_Q^hᵀW_K^h and W_O^h W_V^h (invariant to per-head rotations)."""
    d = lay.d
    out = []
    for h in range(count):
        g = lay.group(h)
        qh, oh = qs[h * d : (h + 1) * d], os_[h * d : (h + 1) * d]
        kh, vh = ks[g * d : (g + 1) * d], vs[g * d : (g + 1) * d]
        out.append(np.concatenate([(qh.T @ kh).ravel(), (oh.T @ vh).ravel()]))
    return np.asarray(out)


def _head_sketch(
    m: Model, layer: int, hidden: int, lay: _Heads, r1: Array, r2: Array
) -> Array | None:
    """A's per-head invariants from streamed projections of q, k, v (gain-folded) and o."""
    g = m.gain("attn_norm", layer, hidden)[:, None]
    q, k, v = (m.scan(role, layer, right=g * r) for role, r in (("q", r1), ("k", r2), ("v", r2)))
    o = m.scan("o", layer, left=r1)
    if q is None or k is None or v is None or o is None or o.left is None:
        return None
    qs, ks, vs = (np.asarray(x.right, dtype=np.float64) for x in (q, k, v))
    return _head_features(qs, ks, vs, np.asarray(o.left).T, lay, lay.heads)


def _head_raw(m: Model, layer: int, hidden: int, lay: _Heads) -> tuple[Array, ...] | None:
    """B's first heads, raw: q, k, v rows (gain-folded) and o columns, within KEEP."""
    count = keep_budget(lay.d * hidden, lay.heads)
    g = m.gain("attn_norm", layer, hidden)
    kv_rows = (lay.group(count - 1) + 1) * lay.d
    q = m.lead_rows("q", layer, count * lay.d)
    k, v = m.lead_rows("k", layer, kv_rows), m.lead_rows("v", layer, kv_rows)
    o = m.scan("o", layer, keep_cols=count * lay.d)
    if q is None or k is None or v is None or o is None or o.cols is None:
        return None
    return q * g, k * g, v * g, o.cols.astype(np.float64)


def head_test(
    a: Model,
    b: Model,
    la: int,
    lb: int,
    hidden: int,
    perm: Array,
    rng: np.random.Generator,
    check: Callable[[], None],
) -> Calibrated | None:
    """Assignment of heads on rotation-invariant products; null: hidden dims relabelled."""
    lay = _layout(a, la, hidden)
    if lay is None or lay != _layout(b, lb, hidden):
        return None
    r1, r2 = (rng.standard_normal((hidden, K_HEAD)) / sqrt(K_HEAD) for _ in range(2))
    fa = _head_sketch(a, la, hidden, lay, r1, r2)
    raw = _head_raw(b, lb, hidden, lay)
    if fa is None or raw is None:
        return None
    q, k, v, o = raw[0][:, perm], raw[1][:, perm], raw[2][:, perm], raw[3][perm]
    count = q.shape[0] // lay.d

    def feature_b(s: Array) -> Array:
        # x[:, s] @ R == x @ R[argsort(s)] (and o[s].T @ R == o.T @ R[argsort(s)])
        inv = np.argsort(s)
        s1, s2 = r1[inv], r2[inv]
        return _head_features(q @ s1, k @ s2, v @ s2, o.T @ s1, lay, count)

    return relabel_test(fa, feature_b, hidden, DRAWS, rng, ASSIGN, check, True)
