"""Width pruning (Minitron-style): which hidden channels and FFN units of A survive in B.

When the residual width differs, B's hidden dims are assigned to A's through the columns
of the embedding over shared token rows (null: B's token rows relabelled, the same
assignment). MLP units are then assigned B -> A on sketches of their up/gate rows and down
columns restricted to the surviving dims (null: B's hidden dims relabelled, as in
aligned.py). Both statistics carry the selection bias of the assignment in their null.
"""

from __future__ import annotations

from collections.abc import Callable
from math import sqrt
from statistics import median
from typing import Any

import numpy as np

from companion.audit.headdim import channel_match
from companion.audit.headprune import head_match
from companion.audit.hidden import Calibrated, relabel_test, stouffer
from companion.audit.kvheads import head_dim_reason, kv_detail, kv_match
from companion.audit.matching import matched, unit_rows
from companion.audit.pairing import Side
from companion.audit.rowstats import MIN_GAP, RELATED_Z, Array, Findings, read_row_set
from companion.audit.schemas import Derivation, Reason
from companion.audit.sketch import keep_budget
from companion.audit.sliced import sliced
from companion.audit.symview import ASSIGN, DRAWS, K_UNIT, MAX_B_UNITS, Model
from companion.audit.width_types import Survival

EMB_COLS_ROWS = 1024  # token rows describing each hidden dim


def width(m: Model) -> int | None:
    """The residual width, from the final norm or the embedding."""
    name = m.name("norm", "final", None)
    if name is not None and len(m.shape(name)) == 1:
        return m.shape(name)[0]
    name = m.matrix("embedding", None) or m.name("embedding", "tok", None)
    return m.shape(name)[1] if name is not None and len(m.shape(name)) == 2 else None


def hidden_match(
    a: Model, b: Model, rng: np.random.Generator, check: Callable[[], None]
) -> Calibrated | None:
    """Assign B's hidden dims to A's by embedding columns over the leading shared token rows."""
    na, nb = a.name("embedding", "tok", None), b.name("embedding", "tok", None)
    if na is None or nb is None or len(a.shape(na)) != 2 or len(b.shape(nb)) != 2:
        return None
    rows = np.arange(min(a.shape(na)[0], b.shape(nb)[0], EMB_COLS_ROWS))
    if rows.size < 16:
        return None
    ea = read_row_set(a.side.ref(na), rows).astype(np.float64).T  # dims x tokens
    eb = read_row_set(b.side.ref(nb), rows).astype(np.float64).T
    if not (np.isfinite(ea).all() and np.isfinite(eb).all()):
        return None
    return relabel_test(ea, lambda s: eb[:, s], rows.size, DRAWS, rng, ASSIGN, check, True)


def _mlp(m: Model, layer: int) -> tuple[str, str, str | None] | None:
    """up, down and (optional) gate names of a layer, shapes consistent with the width."""
    up, down, gate = m.matrix("up", layer), m.matrix("down", layer), m.matrix("gate", layer)
    if up is None or down is None or m.shape(down) != m.shape(up)[::-1]:
        return None
    if m.shape(up)[-1] != width(m):  # e.g. both stored transposed: rows would not fit the gain
        return None
    return up, down, gate if gate is not None and m.shape(gate) == m.shape(up) else None


def _features_a(a: Model, layer: int, cols: Array, proj: Array, gated: bool) -> Array | None:
    """A's unit sketches with only the dims that survive in B (cols[j]: A dim of B dim j)."""
    h = width(a) or 0
    g = a.gain("mlp_norm", layer, h)
    right = np.zeros((h, proj.shape[1]))
    right[cols] = g[cols, None] * proj
    left = np.zeros((h, proj.shape[1]))
    left[cols] = proj
    parts = [a.scan("up", layer, right=right)] + (
        [a.scan("gate", layer, right=right)] if gated else []
    )
    down = a.scan("down", layer, left=left)
    if down is None or down.left is None or any(p is None or p.right is None for p in parts):
        return None
    feats = [np.asarray(p.right, dtype=np.float64) for p in parts if p is not None]
    return np.concatenate([*feats, np.asarray(down.left, dtype=np.float64).T], axis=1)


def _raw_b(b: Model, layer: int, gated: bool) -> Array | None:
    """B's first units, raw (parts x units x hidden), gain-folded, within the KEEP budget."""
    h = width(b) or 0
    n = keep_budget(h, MAX_B_UNITS)
    g = b.gain("mlp_norm", layer, h)
    rows = [b.lead_rows(r, layer, n) for r in (("up", "gate") if gated else ("up",))]
    down = b.scan("down", layer, keep_cols=n)
    if down is None or down.cols is None or any(r is None for r in rows):
        return None
    parts = [(r * g).astype(np.float32) for r in rows if r is not None]
    return np.stack([*parts, down.cols.T.astype(np.float32)])


def unit_match(
    a: Model,
    b: Model,
    la: int,
    lb: int,
    cols: Array,
    rng: np.random.Generator,
    check: Callable[[], None],
) -> Survival | None:
    """Assign B's MLP units to A's (after the hidden map `cols`); count clear survivors."""
    ma, mb = _mlp(a, la), _mlp(b, lb)
    if ma is None or mb is None or (ma[2] is None) != (mb[2] is None):
        return None
    hb = cols.size
    proj = rng.standard_normal((hb, K_UNIT)) / sqrt(K_UNIT)
    fa = _features_a(a, la, cols, proj, ma[2] is not None)
    xb = _raw_b(b, lb, mb[2] is not None)
    if fa is None or xb is None or xb.shape[2] != hb:
        return None
    p32 = proj.astype(np.float32)

    def feature_b(s: Array) -> Array:
        return np.concatenate([p[:, s] @ p32 for p in xb], axis=1).astype(np.float64)

    t = relabel_test(fa, feature_b, hb, DRAWS, rng, ASSIGN, check, True)
    za = unit_rows(fa)
    sims = np.sum(za[t.chosen] * unit_rows(feature_b(np.arange(hb))), axis=1)
    _, null_chosen = matched(za, zb_null := unit_rows(feature_b(rng.permutation(hb))), ASSIGN)
    thr = float(np.quantile(np.sum(za[null_chosen] * zb_null, axis=1), 0.99))
    units_a, units_b = a.shape(ma[0])[0], b.shape(mb[0])[0]
    first = [int(x) for x in t.chosen[:8]]
    return Survival(
        "mlp", la, lb, units_a, units_b, xb.shape[1], int(np.count_nonzero(sims > thr)), t, first
    )


def compare_width(
    a_side: Side, b_side: Side, a_to_b: dict[int, int], layers: list[int], seed: int, job: Any
) -> Findings:
    """Hidden-channel and FFN-unit survival of A in B, when the widths differ."""
    a, b = Model(a_side), Model(b_side)
    ha, hb = width(a), width(b)
    out = Findings()
    if ha is None or hb is None:
        return out
    rng = np.random.default_rng([seed, ha, hb, 59])
    hidden = None
    cols = np.arange(hb)
    if ha != hb:
        hidden = hidden_match(a, b, rng, job.check)
        if hidden is None:
            return out
        cols = hidden.chosen
    elif _changed(a, b, a_to_b, layers):
        cols = _moved_dims(a, b, rng, job.check)
    tests: list[Survival] = []
    for la in layers:
        job.check()
        lb = a_to_b[la]
        mla, mlb = _mlp(a, la), _mlp(b, lb)
        same = mla is not None and mlb is not None and a.shape(mla[0]) == b.shape(mlb[0])
        fits = mla is not None and mlb is not None and not (same and hidden is None)
        if fits and (u := unit_match(a, b, la, lb, cols, rng, job.check)) is not None:
            tests.append(u)
        if (h := head_match(a, b, la, lb, cols, rng, job.check)) is not None:
            tests.append(h)
        if (kv := kv_match(a, b, la, lb, cols, rng, job.check)) is not None:
            tests.append(kv)
        tests += channel_match(a, b, la, lb, cols, rng, job.check)
    dims = {u.layer for u in tests if u.kind.startswith("dim_")}
    dim = head_dim_reason(a, b, [(la, a_to_b[la]) for la in layers if la not in dims])
    if hidden is None and not tests:
        out.reasons += [dim] if dim is not None else []
        return out
    out = _findings(ha, hb, hidden, tests)
    out.reasons += [dim] if dim is not None else []
    if hidden is not None:
        out.add(sliced(a, b, cols, seed))
    return out


def _changed(a: Model, b: Model, a_to_b: dict[int, int], layers: list[int]) -> bool:
    """Whether any tested layer's FFN or attention changed shape (same residual width)."""
    for la in layers:
        for role in ("up", "q", "k"):
            na, nb = a.matrix(role, la), b.matrix(role, a_to_b[la])
            if na is not None and nb is not None and a.shape(na) != b.shape(nb):
                return True
    return False


def _moved_dims(a: Model, b: Model, rng: np.random.Generator, check: Callable[[], None]) -> Array:
    """Same width: B's hidden order from the embedding, used only when it clearly moved.

    The map is taken only when its own calibrated test is decisive (z >= RELATED_Z, above
    every null draw), so on unrelated pairs the identity is kept all but rarely.
    """
    h = width(b) or 0
    t = hidden_match(a, b, rng, check)
    if t is None or t.z < RELATED_Z or t.p > 1.0 / (1 + t.null.size):
        return np.arange(h)
    if np.unique(t.chosen).size != h:
        return np.arange(h)
    return np.asarray(t.chosen)


def _survival(fig: dict[str, float | int | str], u: Survival) -> str:
    """One survival test's figures (added to `fig`) and its phrase."""
    pre, label, count = {
        "mlp": ("", "MLP units", "units"),
        "heads": ("head_", "heads", "heads"),
        "kv": ("kv_", "K/V heads", "kv_heads"),
        "dim_qk": ("qk_", "QK channels", "qk_channels"),
        "dim_vo": ("vo_", "VO channels", "vo_channels"),
    }[u.kind]
    fig[f"{count}.{u.layer}"] = f"{u.units_a}->{u.units_b}"
    fig[f"{pre}survivors.{u.layer}"] = u.survivors
    fig[f"{pre}match_r.{u.layer}"] = round(u.test.observed, 3)
    fig[f"{pre}null_r.{u.layer}"] = round(float(u.test.null.mean()), 3)
    found = f"(first: A's {u.first_a})"
    for key, value in u.extra.items():
        if key not in ("d_a", "d_b"):
            fig[f"{pre}{key}.{u.layer}"] = value
    if "d_a" in u.extra:
        fig[f"head_dim.{u.layer}"] = f"{u.extra['d_a']}->{u.extra['d_b']}"
        fig[f"{pre}head0.{u.layer}"] = ",".join(u.groups)  # A channel of B's head-0 channels
    how, stat = "clearly match one of A's", "matched r"
    if u.kind == "kv":
        fig[f"kv_map.{u.layer}"] = ",".join(u.groups)
        found = f"(A's head or group mean for each: {', '.join(u.groups)})"
        how, stat = "are clearly fitted by A's heads", "least-squares fit r"
    return (
        f"layer {u.layer}: {label} {u.units_a} -> {u.units_b}, {u.survivors} of {u.tested} "
        f"tested in B {how} {found}; {stat} "
        f"{u.test.observed:.3f} vs null {float(u.test.null.mean()):.3f} (p {u.test.p:.3f}, "
        f"{u.test.null.size} draws)"
    )


def _dim_detail(tests: list[Survival]) -> str | None:
    """head_dim a→b with B's clear QK / VO channels (summed over the tested layers)."""
    qk = [u for u in tests if u.kind == "dim_qk"]
    vo = [u for u in tests if u.kind == "dim_vo"]
    if not qk or not vo:
        return None
    da, db = qk[0].extra["d_a"], qk[0].extra["d_b"]
    clear = [sum(u.survivors for u in x) for x in (qk, vo)]
    tested = [sum(u.tested for u in x) for x in (qk, vo)]
    same = sum(u.extra.get("same_head", 0) for u in qk + vo)
    return (
        f"head_dim {da}→{db} (channels within heads removed): {clear[0]} of {tested[0]} QK "
        f"and {clear[1]} of {tested[1]} VO channels of B clearly match one of A's, {same} of "
        "them in the same head"
    )


def _findings(ha: int, hb: int, hidden: Calibrated | None, tests: list[Survival]) -> Findings:
    """Reasons and the width_pruned derivation from the tests."""
    out = Findings(handled={"mlp" if u.kind == "mlp" else "attn" for u in tests})
    out.handled |= {"embedding"} if hidden is not None else set()
    zs = ([hidden.z] if hidden is not None else []) + [u.test.z for u in tests]
    gaps = [hidden.observed - float(hidden.null.mean())] if hidden is not None else []
    gaps += [u.test.observed - float(u.test.null.mean()) for u in tests]
    z = stouffer(zs) or 0.0
    related = z >= RELATED_Z and median(gaps) >= MIN_GAP
    out.related = related
    fig: dict[str, float | int | str] = {"hidden_a": ha, "hidden_b": hb, "z": round(z, 1)}
    text = []
    if hidden is not None:
        fig |= {
            "hidden_match_r": round(hidden.observed, 3),
            "hidden_null": round(float(hidden.null.mean()), 3),
        }
        text.append(
            f"hidden {ha} -> {hb}: B's dims assigned to A's by embedding columns, matched r "
            f"{hidden.observed:.3f} vs null {float(hidden.null.mean()):.3f} (p {hidden.p:.3f})"
        )
    for u in tests:
        text.append(_survival(fig, u))
    details = list(dict.fromkeys(kv_detail(u) for u in tests if u.kind == "kv"))
    if details:
        fig["kv_detail"] = "; ".join(details)
    if dim := _dim_detail(tests):
        fig["head_dim_detail"] = dim
        details.append(dim)
    out.reasons.append(
        Reason(
            kind="width",
            role=("mlp" if any(u.kind == "mlp" for u in tests) else "attn")
            if tests
            else "embedding",
            strength="strong" if related else "info",
            statement="Width alignment: "
            + "; ".join(text)
            + f"; Stouffer z {z:.1f}"
            + (" — related." if related else " — inside the null."),
            figure=z,
            baseline=0.0,
            baseline_name="hidden-relabelling null (same assignment)",
            z=z,
        )
    )
    ordered = all(bool(np.all(np.diff(u.test.chosen) > 0)) for u in tests if u.kind == "mlp")
    fig["units_in_order"] = "yes" if ordered else "no"  # survivors kept A's order (not permuted)
    smaller = hb < ha or any(u.units_b < u.units_a for u in tests)
    if related and smaller:
        out.derivations.append(
            Derivation(
                kind="width_pruned",
                figures=fig,
                confidence="high" if z >= 2 * RELATED_Z else "medium",
                statement="Hidden channels, FFN units or heads of A removed; the survivors "
                "match A's." + "".join(f" {d}." for d in details),
            )
        )
    return out
