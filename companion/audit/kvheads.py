"""Key/value heads regrouped (MHA -> GQA by mean-pooling, or K/V heads removed).

When num_key_value_heads changed but head_dim did not, each of B's K/V heads is fitted by
least squares as a combination of A's K/V heads. A head is described by a sketch of its K
and V rows over the hidden dims that survive in B (gain-folded); the statistic is the mean
correlation of B's heads with their fits. The weights show where a head came from: one A
head (K/V heads removed) or equal weights over a group (the GQA paper's uptraining recipe
mean-pools groups of heads; any grouping is found, not only aligned ones, so a pool over
the heads that survive a Q-head prune is named too). Null: the same fits after B's hidden
dims are relabelled (as headprune.py does). A head_dim change is headdim.py's;
`head_dim_reason` names one that no test covers.
"""

from __future__ import annotations

from collections.abc import Callable
from math import sqrt

import numpy as np

from companion.audit.hidden import Calibrated, Early, null_draws
from companion.audit.schemas import Reason
from companion.audit.sketch import keep_budget
from companion.audit.symview import DRAWS, K_HEAD, Array, Model
from companion.audit.width_types import Survival

CLEAR_DRAWS = 5  # relabelled draws whose best fitted head sets the "clearly matched" bar


def head_dim(m: Model, layer: int) -> int | None:
    """A layer's head width: config head_dim, else q rows / num_attention_heads."""
    q = m.matrix("q", layer)
    if q is None:
        return None
    rows, cfg = m.shape(q)[0], m.side.ckpt.config
    d, heads = cfg.get("head_dim"), cfg.get("num_attention_heads")
    if isinstance(d, int) and d > 0 and rows % d == 0:
        return d
    if isinstance(heads, int) and heads > 0 and rows % heads == 0:
        return rows // heads
    return None


def kv_heads(m: Model, layer: int, hidden: int, d: int) -> int | None:
    """How many K/V heads of width d a layer has (k and v alike, reading `hidden` dims)."""
    k, v = m.matrix("k", layer), m.matrix("v", layer)
    if k is None or v is None or m.shape(k) != m.shape(v):
        return None
    rows, cols = m.shape(k)
    return rows // d if cols == hidden and rows % d == 0 and rows >= d else None


def label(members: list[int]) -> str:
    """'3' for one head of A, '0-3' for a run of heads, '0+5' for others (a pooled group)."""
    if len(members) > 1 and members == list(range(members[0], members[-1] + 1)):
        return f"{members[0]}-{members[-1]}"
    return "+".join(str(m) for m in members)


def fit(ua: Array, fb: Array) -> tuple[Array, Array]:
    """Per B head: correlation with its least-squares fit from A's (centred) heads; weights."""
    zb = fb - fb.mean(axis=1, keepdims=True)
    w = np.linalg.lstsq(ua.T, zb.T, rcond=None)[0]  # A heads x B heads
    est = (ua.T @ w).T
    num = np.sum(est * zb, axis=1)
    den = np.linalg.norm(est, axis=1) * np.linalg.norm(zb, axis=1)
    r: Array = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return r, w.T


def members(w: Array) -> list[int]:
    """The A heads a B head is made of: positive weights at least half the largest."""
    top = float(w.max())
    return [int(j) for j in np.flatnonzero(w >= 0.5 * top)] if top > 0 else []


def per_head(ks: Array, vs: Array, d: int) -> Array:
    """One feature row per K/V head: its K and V row sketches, flattened."""
    n = ks.shape[0] // d
    return np.concatenate([ks.reshape(n, -1), vs.reshape(n, -1)], axis=1)


def _heads_a(a: Model, layer: int, cols: Array, r: Array, d: int) -> Array | None:
    """A's per-head features over the surviving dims (gain-folded K and V row sketches)."""
    h = a.width("k", layer)
    g = a.gain("attn_norm", layer, h)
    right = np.zeros((h, r.shape[1]))
    right[cols] = g[cols, None] * r
    k, v = a.scan("k", layer, right=right), a.scan("v", layer, right=right)
    if k is None or v is None or k.right is None or v.right is None:
        return None
    return per_head(np.asarray(k.right, np.float64), np.asarray(v.right, np.float64), d)


def kv_test(
    heads_a: Array,
    feature_b: Callable[[Array], Array],
    hidden: int,
    rng: np.random.Generator,
    check: Callable[[], None],
    early: Early = True,
) -> tuple[Calibrated, list[str]]:
    """B's heads fitted from A's heads; null: the same fits after B's dims are relabelled.

    Returns the calibrated test (chosen: each B head's largest-weight A head) and, per B
    head, the A head or group it is made of ("?" when its fit is not above every B head's
    fit in CLEAR_DRAWS relabelled draws).
    """
    ua = heads_a - heads_a.mean(axis=1, keepdims=True)
    r, w = fit(ua, feature_b(np.arange(hidden)))

    def draw() -> float:
        return float(fit(ua, feature_b(rng.permutation(hidden)))[0].mean())

    observed = float(r.mean())
    t = Calibrated(observed, null_draws(observed, draw, DRAWS, check, early), w.argmax(axis=1))
    bar = max(
        float(fit(ua, feature_b(rng.permutation(hidden)))[0].max()) for _ in range(CLEAR_DRAWS)
    )
    groups = [label(members(wb)) if rb > bar else "?" for rb, wb in zip(r, w, strict=True)]
    return t, groups


def kv_match(
    a: Model,
    b: Model,
    la: int,
    lb: int,
    cols: Array,
    rng: np.random.Generator,
    check: Callable[[], None],
) -> Survival | None:
    """Fit B's K/V heads from A's (heads or group means) when the K/V head count changed."""
    ha = a.width("k", la)
    d = head_dim(a, la)
    if d is None or head_dim(b, lb) != d:
        return None
    kv_a, kv_b = kv_heads(a, la, ha, d), kv_heads(b, lb, cols.size, d)
    if kv_a is None or kv_b is None or kv_a == kv_b or kv_a < 2:
        return None
    r = rng.standard_normal((cols.size, K_HEAD)) / sqrt(K_HEAD)
    heads_a = _heads_a(a, la, cols, r, d)
    count = keep_budget(d * cols.size, kv_b)  # B heads held raw for the null (all, if small)
    raw = [b.lead_rows(role, lb, count * d) for role in ("k", "v")]
    if heads_a is None or raw[0] is None or raw[1] is None:
        return None
    g = b.gain("attn_norm", lb, cols.size)
    kb, vb = raw[0] * g, raw[1] * g

    def feature_b(s: Array) -> Array:
        return per_head(kb[:, s] @ r, vb[:, s] @ r, d)

    t, groups = kv_test(heads_a, feature_b, cols.size, rng, check)
    survivors = sum(g != "?" for g in groups)
    first = [int(x) for x in t.chosen[:8]]
    return Survival("kv", la, lb, kv_a, kv_b, count, survivors, t, first, groups)


def kv_detail(u: Survival) -> str:
    """How B's K/V heads were made, from the map: pooled groups, kept heads, or mixed."""
    clear = [g for g in u.groups if g != "?"]
    head = f"kv heads {u.units_a}→{u.units_b}"
    if not clear:
        return f"{head}: no B head clearly matched"
    pooled = [g for g in clear if "-" in g or "+" in g]
    unclear = f" ({len(u.groups) - len(clear)} unclear)" if len(clear) < len(u.groups) else ""
    if u.tested < u.units_b:
        unclear += f" (B's first {u.tested} heads tested)"
    if len(pooled) == len(clear):
        sizes = sorted({_size(g) for g in pooled})
        return f"{head} by mean-pooling groups of {'/'.join(map(str, sizes))}{unclear}"
    if not pooled:
        how = "copying A's heads" if u.units_b > u.units_a else f"keeping {len(clear)} of A's heads"
        return f"{head} by {how}{unclear}"
    return f"{head}: mixed, B's heads from A's [{', '.join(u.groups)}]"


def _size(group: str) -> int:
    """How many A heads a group label names."""
    if "-" in group:
        lo, hi = group.split("-")
        return int(hi) - int(lo) + 1
    return group.count("+") + 1


def head_dim_reason(a: Model, b: Model, layers: list[tuple[int, int]]) -> Reason | None:
    """A specific not-comparable reason when head_dim changed in any tested layer."""
    for la, lb in layers:
        da, db = head_dim(a, la), head_dim(b, lb)
        if da is not None and db is not None and da != db:
            return Reason(
                kind="not_comparable",
                role="attn",
                strength="info",
                statement=(
                    f"attn: head_dim {da}→{db} (layer {la}) together with a change the "
                    "channel test does not cover (head_dim grown, or the query / K/V head "
                    "counts changed too): per-head channel survival is not tested (which of "
                    "A's channels, and for a rotary model which rotary pairs, survive), so "
                    "q/k/v/o were not compared. Next step: audit with --roles norm,mlp and "
                    "compare num_attention_heads, num_key_value_heads and head_dim in both "
                    "config.json files."
                ),
            )
    return None
