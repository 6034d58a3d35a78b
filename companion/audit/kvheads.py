"""Key/value heads regrouped (MHA -> GQA by mean-pooling, or K/V heads removed).

When num_key_value_heads changed but head_dim did not, each of B's K/V heads is compared
with each of A's K/V heads and with the mean of each aligned group of A's heads (the GQA
paper's uptraining recipe pools heads [g*r, (g+1)*r), r = kv_A // kv_B). A K/V head is
described by a sketch of its K rows and V rows over the hidden dims that survive in B
(gain-folded); B's heads are assigned to the candidates, and the null runs the same
candidates and assignment after B's hidden dims are relabelled (as headprune.py does), so
the selection over candidates is in the null too. A head_dim change is headdim.py's;
`head_dim_reason` names one that no test covers.
"""

from __future__ import annotations

from collections.abc import Callable
from math import sqrt

import numpy as np

from companion.audit.hidden import Calibrated, Early, relabel_test
from companion.audit.matching import matched, unit_rows
from companion.audit.schemas import Reason
from companion.audit.sketch import keep_budget
from companion.audit.symview import ASSIGN, DRAWS, K_HEAD, Array, Model
from companion.audit.width_types import Survival

CLEAR_DRAWS = 5  # relabelled draws whose best matched head sets the "clearly matched" bar


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


def candidates(kv_a: int, kv_b: int) -> list[tuple[int, ...]]:
    """A's single K/V heads, then the aligned groups of r = kv_a // kv_b heads (r > 1)."""
    out: list[tuple[int, ...]] = [(h,) for h in range(kv_a)]
    if kv_b < kv_a and kv_a % kv_b == 0:
        r = kv_a // kv_b
        out += [tuple(range(g * r, (g + 1) * r)) for g in range(kv_b)]
    return out


def label(members: tuple[int, ...]) -> str:
    """'3' for one head of A, '0-3' for the mean of a group."""
    return str(members[0]) if len(members) == 1 else f"{members[0]}-{members[-1]}"


def per_head(ks: Array, vs: Array, d: int) -> Array:
    """One feature row per K/V head: its K and V row sketches, flattened."""
    n = ks.shape[0] // d
    return np.concatenate([ks.reshape(n, -1), vs.reshape(n, -1)], axis=1)


def _heads_a(a: Model, layer: int, cols: Array, r: Array, d: int) -> Array | None:
    """A's per-head features over the surviving dims (gain-folded K and V row sketches)."""
    h = a.shape(a.matrix("k", layer) or "")[1]
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
    kv_b: int,
    rng: np.random.Generator,
    check: Callable[[], None],
    early: Early = True,
) -> tuple[Calibrated, list[str]]:
    """B's heads (all kv_b, or the first of them) assigned to A's heads and group means;
    null: B's hidden dims relabelled.

    Returns the calibrated test and, per B head, the A head or group it clearly matched
    ("?" when not above every matched head of CLEAR_DRAWS relabelled draws).
    """
    cands = candidates(heads_a.shape[0], kv_b)
    fa = np.asarray([heads_a[list(c)].mean(axis=0) for c in cands])  # sketches are linear
    tested = feature_b(np.arange(hidden)).shape[0]
    assign = ASSIGN if tested <= len(cands) else 0  # more B heads than candidates: nearest
    t = relabel_test(fa, feature_b, hidden, DRAWS, rng, assign, check, early)
    za = unit_rows(fa)
    sims = np.sum(za[t.chosen] * unit_rows(feature_b(np.arange(hidden))), axis=1)
    clear = sims > _clear_threshold(za, feature_b, hidden, assign, rng)
    groups = [label(cands[int(c)]) if ok else "?" for c, ok in zip(t.chosen, clear, strict=True)]
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
    """Assign B's K/V heads to A's heads or group means, when the K/V head count changed."""
    ha = a.shape(a.matrix("k", la) or "")[1] if a.matrix("k", la) else 0
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

    t, groups = kv_test(heads_a, feature_b, cols.size, kv_b, rng, check)
    survivors = sum(g != "?" for g in groups)
    first = [int(x) for x in t.chosen[:8]]
    return Survival("kv", la, lb, kv_a, kv_b, count, survivors, t, first, groups)


def _clear_threshold(
    za: Array,
    feature_b: Callable[[Array], Array],
    hidden: int,
    assign: int,
    rng: np.random.Generator,
) -> float:
    """The highest matched similarity of any B head over CLEAR_DRAWS relabelled draws."""
    best = -1.0
    for _ in range(CLEAR_DRAWS):
        zb = unit_rows(feature_b(rng.permutation(hidden)))
        _, chosen = matched(za, zb, assign)
        best = max(best, float(np.max(np.sum(za[chosen] * zb, axis=1))))
    return best


def kv_detail(u: Survival) -> str:
    """How B's K/V heads were made, from the map: pooled groups, kept heads, or mixed."""
    clear = [g for g in u.groups if g != "?"]
    head = f"kv heads {u.units_a}→{u.units_b}"
    if not clear:
        return f"{head}: no B head clearly matched"
    pooled = [g for g in clear if "-" in g]
    unclear = f" ({len(u.groups) - len(clear)} unclear)" if len(clear) < len(u.groups) else ""
    if u.tested < u.units_b:
        unclear += f" (B's first {u.tested} heads tested)"
    if len(pooled) == len(clear):
        return f"{head} by mean-pooling groups of {u.units_a // u.units_b}{unclear}"
    if not pooled:
        return f"{head} by keeping {len(clear)} of A's heads{unclear}"
    return f"{head}: mixed, B's heads from A's [{', '.join(u.groups)}]"


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
