"""head_dim reduced (channels within each head removed): which of A's per-head channels survive.

With the same query and K/V head counts and a smaller head_dim, every B channel is a unit:
a QK channel is its q row with the matching k row of its K/V head, a VO channel its v row
with the matching o column. Each is sketched over the hidden dims that survive in B
(gain-folded) and B's channels are assigned to A's, QK and VO separately (a pruner may keep
different channels for the two); null: B's hidden dims relabelled, the same assignment.
Channels are taken as stored: a per-head rotation of Q/K (or V/O) moves them and is not
undone here. For a rotary model the kept channels also fix which rotary pairs survive; the
figure `qk_rotary_pairs` says how many of B's QK channels kept their rotate-half partner.
"""

from __future__ import annotations

from collections.abc import Callable
from math import sqrt

import numpy as np

from companion.audit.hidden import Early, relabel_test
from companion.audit.kvheads import head_dim
from companion.audit.matching import matched, unit_rows
from companion.audit.sketch import keep_budget
from companion.audit.symview import ASSIGN, DRAWS, K_UNIT, Array, Model
from companion.audit.width_types import Survival


def _counts(m: Model, layer: int, hidden: int, d: int) -> tuple[int, int] | None:
    """(query heads, K/V heads) of width d, with consistent q/k/v/o shapes."""
    names = [m.matrix(r, layer) for r in ("q", "k", "v", "o")]
    if any(n is None for n in names):
        return None
    q, k, v, o = (m.shape(n) for n in names if n is not None)
    if q[1] != hidden or k != v or k[1] != hidden or o != (hidden, q[0]):
        return None
    if q[0] % d or k[0] % d or q[0] // d < 1 or k[0] // d < 1 or (q[0] // d) % (k[0] // d):
        return None
    return q[0] // d, k[0] // d


def _kv_row(heads: int, kv: int, d: int) -> Array:
    """For every q row (head h, channel i), the k/v row of the same channel in h's K/V head."""
    h, i = np.divmod(np.arange(heads * d), d)
    return (h // (heads // kv)) * d + i


def channel_pairs(
    q: Array, k: Array, v: Array, o: Array, heads: int, kv: int, d: int
) -> list[Array]:
    """QK and VO channel features (one row per q row) from row sketches of q, k, v, o.

    q and o may hold only the first channels (B's, within the KEEP budget)."""
    kr = _kv_row(heads, kv, d)[: q.shape[0]]
    return [np.concatenate([q, k[kr]], axis=1), np.concatenate([v[kr], o], axis=1)]


def _features_a(
    a: Model, layer: int, cols: Array, r: Array, counts: tuple[int, int], d: int
) -> list[Array] | None:
    """A's QK and VO channel sketches over the dims that survive in B."""
    h = a.width("q", layer)
    g = a.gain("attn_norm", layer, h)
    right, left = np.zeros((h, r.shape[1])), np.zeros((h, r.shape[1]))
    right[cols], left[cols] = g[cols, None] * r, r
    q, k, v = (a.scan(role, layer, right=right) for role in ("q", "k", "v"))
    o = a.scan("o", layer, left=left)
    if q is None or k is None or v is None or o is None or o.left is None:
        return None
    qs, ks, vs = (np.asarray(x.right, dtype=np.float64) for x in (q, k, v))
    return channel_pairs(qs, ks, vs, np.asarray(o.left, dtype=np.float64).T, *counts, d)


def _raw_b(
    b: Model, layer: int, hidden: int, counts: tuple[int, int], d: int
) -> list[Array] | None:
    """B's first channels within KEEP: q, k, v rows (gain-folded) and o columns."""
    heads, kv = counts
    n = keep_budget(hidden, heads * d)
    kv_rows = int(_kv_row(heads, kv, d)[:n].max()) + 1
    raw = [b.lead_rows("q", layer, n)] + [b.lead_rows(r, layer, kv_rows) for r in ("k", "v")]
    o = b.scan("o", layer, keep_cols=n)
    if any(x is None for x in raw) or o is None or o.cols is None:
        return None
    g = b.gain("attn_norm", layer, hidden)
    return [x * g for x in raw if x is not None] + [o.cols.astype(np.float64)]


def channel_match(
    a: Model,
    b: Model,
    la: int,
    lb: int,
    cols: Array,
    rng: np.random.Generator,
    check: Callable[[], None],
) -> list[Survival]:
    """Assign B's QK and VO channels to A's when head_dim shrank (same head counts)."""
    da, db = head_dim(a, la), head_dim(b, lb)
    ha = a.width("q", la)
    if da is None or db is None or db >= da:
        return []
    counts = _counts(a, la, ha, da)
    if counts is None or counts != _counts(b, lb, cols.size, db):
        return []
    r = rng.standard_normal((cols.size, K_UNIT)) / sqrt(K_UNIT)
    fa = _features_a(a, la, cols, r, counts, da)
    raw = _raw_b(b, lb, cols.size, counts, db)
    if fa is None or raw is None:
        return []
    q, k, v, o = raw
    out = []
    for part, name in ((0, "qk"), (1, "vo")):

        def feature_b(s: Array, part: int = part) -> Array:
            # x[:, s] @ R == x @ R[argsort(s)] (and o[s].T @ R == o.T @ R[argsort(s)])
            rs = r[np.argsort(s)]
            return channel_pairs(q @ rs, k @ rs, v @ rs, o.T @ rs, *counts, db)[part]

        dims = (da, db)
        out.append(
            channel_survival(name, (la, lb), fa[part], feature_b, cols.size, dims, rng, check)
        )
    return out


def channel_survival(
    name: str,
    layers: tuple[int, int],
    fa: Array,
    feature_b: Callable[[Array], Array],
    hidden: int,
    dims: tuple[int, int],
    rng: np.random.Generator,
    check: Callable[[], None],
    early: Early = True,
) -> Survival:
    """One channel family's calibrated assignment, its clear survivors and kept-in-head share."""
    t = relabel_test(fa, feature_b, hidden, DRAWS, rng, ASSIGN, check, early)
    za = unit_rows(fa)
    sims = np.sum(za[t.chosen] * unit_rows(feature_b(np.arange(hidden))), axis=1)
    zb_null = unit_rows(feature_b(rng.permutation(hidden)))
    _, null_chosen = matched(za, zb_null, ASSIGN)
    clear = sims > float(np.max(np.sum(za[null_chosen] * zb_null, axis=1)))
    da, db = dims
    same_head = t.chosen // da == np.arange(t.chosen.size) // db
    extra = {"same_head": int(np.count_nonzero(same_head & clear)), "d_a": da, "d_b": db}
    if name == "qk":
        kept = {int(c) for c in t.chosen[clear]}
        extra["rotary_pairs"] = sum((c // da) * da + (c % da + da // 2) % da in kept for c in kept)
    first = [int(x) for x in t.chosen[:8]]
    head0 = [str(int(c) % da) if ok else "?" for c, ok in zip(t.chosen[:db], clear, strict=False)]
    survivors, units_b = int(np.count_nonzero(clear)), t.chosen.size
    return Survival(
        f"dim_{name}", *layers, fa.shape[0], units_b, units_b, survivors, t, first, head0, extra
    )
