"""Compare A and B after undoing the exact weight symmetries a derived model can hide behind.

Order: recover the hidden (residual-stream) permutation from the embeddings over shared
token rows plus every norm and projection that touches the residual stream; apply it to
B; then match MLP units by assignment and attention heads through rotation-invariant
per-head products (W_Q^h·W_K^hᵀ and W_O^h·W_V^h, sketched); norm gains are folded into the
following projections, and every statistic is a correlation, so rescales cancel. Each
test has a calibrated null (see hidden.py) and layers are combined by Stouffer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from math import sqrt
from typing import Any

import numpy as np

from companion.audit.checkpoint import TensorRef
from companion.audit.heads import head_elementwise, head_test
from companion.audit.hidden import (
    SKETCH,
    Z_DECISIVE,
    Calibrated,
    HiddenAlignment,
    align_hidden,
    normal_sf,
    relabel_test,
    stouffer,
)
from companion.audit.pairing import Side
from companion.audit.rowstats import read_row_set
from companion.audit.schemas import (
    AlignedEvidence,
    DeltaStat,
    HiddenEvidence,
    MatchSummary,
)
from companion.audit.sketch import CHUNK, WHOLE, ProfileSketch, keep_budget, read_whole
from companion.audit.symview import (
    ALIGNED_Z,
    ASSIGN,
    DRAWS,
    EMB_ENOUGH,
    EMB_ROWS,
    K_UNIT,
    MAX_B_UNITS,
    TEST_DIMS,
    Array,
    Model,
    residual_inputs,
)
from companion.audit.vocab import TABLES, VocabMaps

Rows = dict[str, tuple[Array, str]]  # table role -> (row ids of one side, how they were paired)
_NONE = np.empty(0, dtype=np.int64)


def _profile(m: Model, layers: list[int], hidden: int, rows: Rows, seed: int, job: Any) -> Profile:
    """Per hidden dim, a sketch of everything that touches the residual stream.

    Embedding rows (the paired rows `rows` gives this side) stream in blocks; projections
    contribute their gain-folded column norms (inputs) or row norms (outputs).
    """
    prof = ProfileSketch(hidden, SKETCH, seed)
    sources = _tables(prof, m, hidden, rows, TABLES)
    norms = [k for k in m.side.by_key if k.role == "norm" and k.expert is None]
    for k in sorted(norms, key=lambda k: (k.layer or -1, k.slot, k.param)):
        g = m.vector(k.role, k.slot, k.layer, k.param)
        if g is not None and g.shape == (hidden,):
            prof.add(g[:, None])
    sources.append(f"{len(norms)} norms")
    for layer in layers:
        job.check()
        for role, slot in residual_inputs():
            name = m.matrix(role, layer)
            if name is not None and m.shape(name)[1] == hidden and (s := m.scan(role, layer)):
                prof.add((np.sqrt(s.col_sq) * np.abs(m.gain(slot, layer, hidden)))[:, None])
        for role in ("o", "down"):
            name = m.matrix(role, layer)
            if name is not None and m.shape(name)[0] == hidden and (s := m.scan(role, layer)):
                prof.add(np.sqrt(s.row_sq)[:, None])
    return Profile(prof.acc, prof.count, ", ".join(sources))


def _tables(
    prof: ProfileSketch, m: Model, hidden: int, rows: Rows, tables: tuple[tuple[str, str], ...]
) -> list[str]:
    """Add the paired rows of the embedding tables to a profile; their descriptions."""
    sources = []
    for role, slot in tables:
        name, (ids, how) = m.name(role, slot, None), rows.get(role, (_NONE, ""))
        if not ids.size or name is None or m.shape(name)[1:] != (hidden,):
            continue
        ok = True
        for block in _id_blocks(m.side.ref(name), ids):
            ok = ok and bool(np.isfinite(block).all())
            prof.add(np.nan_to_num(block).T)
        sources.append(f"{role} ({ids.size} {how})" + ("" if ok else ", non-finite zeroed"))
    return sources


def embedding_perm(
    a_side: Side, b_side: Side, vocab: VocabMaps | None, seed: int, check: Callable[[], None]
) -> Array | None:
    """B's hidden order from the paired token-embedding rows alone (no layer involved), when
    its calibrated test beats every draw by ALIGNED_Z and it moves dims; else None."""
    a, b = Model(a_side), Model(b_side)
    hidden = hidden_size(a)
    if hidden is None or hidden != hidden_size(b):
        return None
    rows_a, rows_b = _paired_rows(a, b, vocab)
    pa, pb = ProfileSketch(hidden, SKETCH, seed), ProfileSketch(hidden, SKETCH, seed)
    _tables(pa, a, hidden, rows_a, TABLES[:1])
    _tables(pb, b, hidden, rows_b, TABLES[:1])
    if pa.count < EMB_ENOUGH or pa.count != pb.count:
        return None
    h = align_hidden(pa.acc, pb.acc, "embedding", DRAWS, seed, ASSIGN, check, True, TEST_DIMS)
    if h is None or not h.moved or h.test.z < ALIGNED_Z:
        return None
    return h.perm if h.test.observed > float(h.test.null.max()) else None


@dataclass(frozen=True)
class Profile:
    """One side's sketched hidden profile, how many features went in, and their sources."""

    sketch: Array
    features: int
    source: str


def hidden_size(m: Model) -> int | None:
    """The residual width, from the tensors (a config beside them may describe another model)."""
    probes = (
        ("norm", "final", None, 0),
        ("embedding", "tok", None, 1),
        ("norm", "attn_norm", 0, 0),
        ("q", "q", 0, 1),
        ("up", "up", 0, 1),
    )
    widths = [w for probe in probes if (w := _shape(m, *probe))]
    if not widths:
        return None
    h = m.side.ckpt.config.get("hidden_size", m.side.ckpt.config.get("n_embd"))
    return h if isinstance(h, int) and h in widths else widths[0]


def _shape(m: Model, role: str, slot: str, layer: int | None, axis: int) -> int | None:
    """One dimension of a tensor, if the model has it (and it has that many axes)."""
    name = m.name(role, slot, layer)
    shape = m.side.ref(name).info.shape if name else ()
    return int(shape[axis]) if len(shape) > axis else None


def _paired_rows(a: Model, b: Model, vocab: VocabMaps | None) -> tuple[Rows, Rows]:
    """Each table's rows for the profile, paired as the vocabulary alignment paired them
    (by token string or shifted ID), else the leading rows by ID; at most EMB_ROWS."""
    rows_a: Rows = {}
    rows_b: Rows = {}
    for role, slot in TABLES:
        na, nb = a.name(role, slot, None), b.name(role, slot, None)
        if na is None or nb is None:
            continue
        m = vocab.rows(role) if vocab is not None else None
        if m is None:
            n = min(a.shape(na)[0], b.shape(nb)[0], EMB_ROWS)
            ids_a = ids_b = np.arange(n, dtype=np.int64)
            how = "shared rows"
        else:
            ids_a, ids_b = m.ids_a[:EMB_ROWS], m.ids_b[:EMB_ROWS]
            how = f"shared rows paired by {m.source.split(' (')[0]}"
        rows_a[role], rows_b[role] = (ids_a, how), (ids_b, how)
    return rows_a, rows_b


def _id_blocks(ref: TensorRef, ids: Array) -> Iterator[Array]:
    """The given rows of a 2-D tensor in float32, CHUNK elements at a time, in `ids` order."""
    step = max(1, CHUNK // max(int(ref.info.shape[1]), 1))
    for start in range(0, ids.size, step):
        yield read_row_set(ref, ids[start : start + step])


def _mlp_names(m: Model, layer: int, hidden: int) -> bool:
    """Whether a layer has up and down projections of matching shapes (gate optional)."""
    up, down = m.matrix("up", layer), m.matrix("down", layer)
    if up is None or down is None:
        return False
    return m.shape(up)[1] == hidden and m.shape(down) == m.shape(up)[::-1]


def _has_gate(m: Model, layer: int) -> bool:
    """Whether the layer has a gate shaped like its up projection."""
    gate, up = m.matrix("gate", layer), m.matrix("up", layer)
    return gate is not None and up is not None and m.shape(gate) == m.shape(up)


def _unit_sketch(m: Model, layer: int, hidden: int, proj: Array, gated: bool) -> Array | None:
    """A's unit features, streamed: gain-folded up/gate rows and down columns, projected."""
    g = m.gain("mlp_norm", layer, hidden)[:, None]
    parts = [m.scan("up", layer, right=g * proj)]
    parts += [m.scan("gate", layer, right=g * proj)] if gated else []
    down = m.scan("down", layer, left=proj)
    if down is None or any(p is None or p.right is None for p in parts):
        return None
    feats = [np.asarray(p.right, dtype=np.float64) for p in parts if p is not None]
    return np.concatenate([*feats, np.asarray(down.left).T], axis=1)


def _unit_raw(m: Model, layer: int, hidden: int, gated: bool) -> Array | None:
    """B's first units, raw and gain-folded (parts x units x hidden), within the KEEP budget."""
    n = keep_budget(hidden, MAX_B_UNITS)
    g = m.gain("mlp_norm", layer, hidden)
    rows = [m.lead_rows(r, layer, n) for r in (("up", "gate") if gated else ("up",))]
    down = m.scan("down", layer, keep_cols=n)
    if down is None or down.cols is None or any(r is None for r in rows):
        return None
    parts = [(r * g).astype(np.float32) for r in rows if r is not None]
    return np.stack([*parts, down.cols.T])


def _mlp_test(
    a: Model,
    b: Model,
    la: int,
    lb: int,
    hidden: int,
    perm: Array,
    rng: np.random.Generator,
    check: Callable[[], None],
) -> Calibrated | None:
    """Assignment of MLP units after hidden alignment; null: B's hidden dims relabelled."""
    proj = rng.standard_normal((hidden, K_UNIT)) / sqrt(K_UNIT)
    if not (_mlp_names(a, la, hidden) and _mlp_names(b, lb, hidden)):
        return None
    gated = _has_gate(a, la)
    if gated != _has_gate(b, lb):
        return None
    fa = _unit_sketch(a, la, hidden, proj, gated)
    xb = _unit_raw(b, lb, hidden, gated)
    if fa is None or xb is None:
        return None
    xb = xb[:, :, perm]

    p32 = proj.astype(np.float32)

    def feature_b(sigma: Array) -> Array:
        # p[:, sigma] @ P == p @ P[argsort(sigma)]: permute the small projection, not B
        p_inv = p32[np.argsort(sigma)]
        return np.concatenate([p @ p_inv for p in xb], axis=1).astype(np.float64)

    return relabel_test(fa, feature_b, hidden, DRAWS, rng, ASSIGN, check, True)


def _summary(kind: Any, t: Calibrated, la: int, lb: int) -> MatchSummary:
    """A layer test as a MatchSummary."""
    units = t.chosen.size
    return MatchSummary(
        kind=kind,
        units=units,
        method="assignment",
        observed=t.observed,
        null_mean=float(t.null.mean()),
        null_sd=float(t.null.std()),
        z=t.z,
        p=t.p,
        draws=int(t.null.size),
        moved=float(np.mean(t.chosen != np.arange(units))),
        layer=la,
        layer_b=lb,
    )


def _hidden_evidence(h: HiddenAlignment) -> HiddenEvidence:
    """Schema view of the hidden alignment."""
    return HiddenEvidence(
        source=h.source,
        dims=h.dims,
        one_to_one=h.one_to_one,
        moved=h.moved,
        observed=h.test.observed,
        null_mean=float(h.test.null.mean()),
        null_sd=float(h.test.null.std()),
        z=h.test.z,
        p=h.test.p,
        draws=int(h.test.null.size),
    )


def _delta(name: str, layer: int, wa: Array, wb: Array) -> DeltaStat | None:
    """Relative size and 90 %-energy rank of B - A (small matrices only)."""
    if wa.shape != wb.shape or wa.ndim != 2 or min(wa.shape) > 1024:
        return None
    d = (wb - wa).astype(np.float64)
    na = float(np.linalg.norm(wa.astype(np.float64)))
    s = np.linalg.svd(d, compute_uv=False) ** 2
    total = float(s.sum())
    rank = int(np.searchsorted(np.cumsum(s), 0.9 * total) + 1) if total > 0 else 0
    rel = sqrt(total) / na if na > 0 else 0.0
    return DeltaStat(name=name, layer=layer, rel_l2=rel, rank90=rank, full_rank=min(d.shape))


def layer_deltas(a: Model, b: Model, la: int, lb: int, perm: Array) -> list[DeltaStat]:
    """Delta statistics of the projections of one aligned layer pair (up to WHOLE elements)."""
    out = []
    for role in ("q", "k", "v", "o", "up", "gate", "down"):
        na, nb = a.matrix(role, la), b.matrix(role, lb)
        axis = 0 if role in ("o", "down") else 1  # the side that touches the residual stream
        if na is None or nb is None or a.shape(na) != b.shape(nb):
            continue
        if min(a.shape(na)) > 1024 or min(a.shape(na)) == 0:
            continue
        if a.shape(na)[axis] != perm.size:  # not a residual-stream matrix (or empty)
            continue
        wa, wb = read_whole(a.side.ref(na), na), read_whole(b.side.ref(nb), nb)
        if wa is None or wb is None:
            a.skipped.append(f"{na}: over {WHOLE} elements or non-finite (no delta rank)")
            continue
        wb = wb[perm] if axis == 0 else wb[:, perm]
        if (d := _delta(role, la, wa, wb)) is not None:
            out.append(d)
    return out


def compare_aligned(
    a_side: Side,
    b_side: Side,
    a_to_b: dict[int, int],
    layers: list[int],
    seed: int,
    job: Any,
    vocab: VocabMaps | None = None,
) -> AlignedEvidence | None:
    """Align B to A and run the calibrated unit and head tests on `layers`.

    `vocab` pairs embedding rows when the vocabularies differ (None: rows by ID)."""
    a, b = Model(a_side), Model(b_side)
    hidden = hidden_size(a)
    if hidden is None or hidden != hidden_size(b):
        return None
    rows_a, rows_b = _paired_rows(a, b, vocab)
    shared = rows_a.get("embedding", (_NONE, ""))[0].size
    # many shared embedding rows carry the hidden order; projections then add one layer
    prof_layers = layers[:1] if shared >= EMB_ENOUGH else layers
    # the two sides' profiles are independent reads and sketches: one runs on a second thread
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-profile") as ex:
        layers_b = [a_to_b[la] for la in prof_layers]
        later = ex.submit(_profile, b, layers_b, hidden, rows_b, seed, job)
        pa = _profile(a, prof_layers, hidden, rows_a, seed, job)
        pb = later.result()
    h = None
    if pa.features == pb.features and pa.features >= 2:
        h = align_hidden(
            pa.sketch, pb.sketch, pa.source, DRAWS, seed, ASSIGN, job.check, "inside", TEST_DIMS
        )
    perm = h.perm if h is not None else np.arange(hidden)
    rng = np.random.default_rng([seed, hidden, 41])
    tests: list[MatchSummary] = []
    stopped = None
    for k, la in enumerate(layers):
        job.check()
        lb = a_to_b[la]
        for kind, run in (("mlp_units", _mlp_test), ("heads_invariant", head_test)):
            t: Calibrated | None = run(a, b, la, lb, hidden, perm, rng, job.check)
            if t is not None:
                tests.append(_summary(kind, t, la, lb))
                if kind == "heads_invariant":
                    ew = head_elementwise(a, b, la, lb, hidden, perm, t.chosen)
                    tests[-1].elementwise = ew
        if k + 1 < len(layers) and tests and min(t.z for t in tests) >= Z_DECISIVE:
            stopped = (
                f"after {k + 1} of {len(layers)} layers: every layer test so far is at least "
                f"z {Z_DECISIVE:.0f} above its null"
            )
            break
    z = stouffer([t.z for t in tests])
    # the deltas name the derivation: every picked layer, even after the tests stopped early
    deltas = [d for la in layers for d in layer_deltas(a, b, la, a_to_b[la], perm)]
    return AlignedEvidence(
        hidden=_hidden_evidence(h) if h is not None else None,
        layers=tests,
        z=z,
        p=normal_sf(z) if z is not None else None,
        related=z is not None and z >= ALIGNED_Z,
        deltas=deltas,
        skipped=sorted(set(a.skipped + b.skipped)),
        stopped_early=stopped,
    )
