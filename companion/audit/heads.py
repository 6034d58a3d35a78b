"""Attention heads compared through rotation-invariant per-head products, with their null."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import sqrt

import numpy as np

from companion.audit.hidden import Calibrated, relabel_test
from companion.audit.rowstats import read_row_set
from companion.audit.sketch import keep_budget, row_blocks
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


def _rows_of(m: Model, role: str, layer: int, ids: Array) -> Array | None:
    """The given rows of a layer's matrix (float64), or None when absent or not finite."""
    name = m.matrix(role, layer)
    x = read_row_set(m.side.ref(name), ids).astype(np.float64) if name is not None else None
    return x if x is not None and np.isfinite(x).all() else None


def _cols_of(m: Model, role: str, layer: int, ids: Array) -> Array | None:
    """The given columns of a layer's matrix (float64), streamed in row blocks, or None."""
    name = m.matrix(role, layer)
    if name is None:
        return None
    blocks = [x[:, ids] for _, x in row_blocks(m.side.ref(name), name)]
    out = np.concatenate(blocks).astype(np.float64)
    return out if np.isfinite(out).all() else None


def _span(starts: Array, d: int) -> Array:
    """The indices of the d-wide blocks starting at `starts`, in order."""
    return np.asarray((starts[:, None] + np.arange(d)[None, :]).reshape(-1), dtype=np.int64)


def head_elementwise(
    a: Model, b: Model, la: int, lb: int, hidden: int, perm: Array, chosen: Array
) -> dict[str, float] | None:
    """Element-wise Pearson of q, k, v, o after the hidden and head alignment (gain-folded).

    B's first heads (the ones head_test matched, within KEEP) are paired with A's heads
    `chosen`, their K/V rows with those heads' groups: a permuted or fine-tuned B keeps
    these high, per-head invertible maps inside attention (W_Q^h <- A·W_Q^h,
    W_K^h <- A^-T·W_K^h; W_V^h <- B·W_V^h, W_O^h <- W_O^h·B^-1) do not."""
    lay = _layout(a, la, hidden)
    raw = _head_raw(b, lb, hidden, lay) if lay is not None else None
    if lay is None or raw is None or lay != _layout(b, lb, hidden):
        return None
    d, heads = lay.d, range(chosen.size)
    qb, kb, vb, ob = raw[0][:, perm], raw[1][:, perm], raw[2][:, perm], raw[3][perm]
    if qb.shape[0] != chosen.size * d:
        return None
    group_b = _span(np.array([lay.group(h) * d for h in heads]), d)
    group_a = _span(np.array([lay.group(int(c)) * d for c in chosen]), d)
    ga = a.gain("attn_norm", la, hidden)
    qa, ka, va = (
        _rows_of(a, r, la, ids)
        for r, ids in (("q", _span(chosen * d, d)), ("k", group_a), ("v", group_a))
    )
    oa = _cols_of(a, "o", la, _span(chosen * d, d))
    if qa is None or ka is None or va is None or oa is None:
        return None
    pairs = (
        ("q", qa * ga, qb),
        ("k", ka * ga, kb[group_b]),
        ("v", va * ga, vb[group_b]),
        ("o", oa, ob),
    )
    return {role: _pearson(xa.ravel(), xb.ravel()) for role, xa, xb in pairs}


def _pearson(x: Array, y: Array) -> float:
    """Pearson correlation of two equal-length vectors (0 when either is constant)."""
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x @ x) * (y @ y)))
    return float(x @ y) / den if den > 0 else 0.0
