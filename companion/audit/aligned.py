"""Compare A and B after undoing the exact weight symmetries a derived model can hide behind.

Order: recover the hidden (residual-stream) permutation from the embeddings over shared
token rows plus every norm and projection that touches the residual stream; apply it to
B; then match MLP units by assignment and attention heads through rotation-invariant
per-head products (W_Q^h·W_K^hᵀ and W_O^h·W_V^h, sketched); norm gains are folded into the
following projections, and every statistic is a correlation, so rescales cancel. Each
test has a calibrated null (see hidden.py) and layers are combined by Stouffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import sqrt
from typing import Any

import numpy as np

from companion.audit.alignment import Key
from companion.audit.hidden import (
    Calibrated,
    HiddenAlignment,
    align_hidden,
    normal_sf,
    relabel_test,
    stouffer,
)
from companion.audit.pairing import Side
from companion.audit.safetensors import decode
from companion.audit.schemas import (
    AlignedEvidence,
    DeltaStat,
    HiddenEvidence,
    MatchSummary,
)

Array = np.ndarray[Any, Any]
CAP = 1 << 24  # largest tensor (elements) loaded whole for alignment
EMB_ROWS = 1024
K_UNIT = 32
K_HEAD = 12
MAX_B_UNITS = 768
ALIGNED_Z = 5.0
_INPUT = {
    "q": "attn_norm",
    "k": "attn_norm",
    "v": "attn_norm",
    "up": "mlp_norm",
    "gate": "mlp_norm",
}


@dataclass
class Model:
    """One side's tensors, read whole on demand (up to CAP elements) as float64."""

    side: Side
    skipped: list[str] = field(default_factory=list)

    def name(self, role: str, slot: str, layer: int | None, param: str = "weight") -> str | None:
        """The tensor name for a key, if present."""
        return self.side.by_key.get(Key(role, slot, layer, None, param))

    def get(self, role: str, slot: str, layer: int | None, param: str = "weight") -> Array | None:
        """A whole tensor, or None when absent, too large or not finite."""
        name = self.name(role, slot, layer, param)
        if name is None:
            return None
        ref = self.side.ref(name)
        if ref.info.numel > CAP:
            self.skipped.append(f"{name}: {ref.info.numel} elements, over the {CAP} cap")
            return None
        x = np.asarray(decode(ref.file.read(name)), dtype=np.float64).reshape(ref.info.shape)
        return x if np.isfinite(x).all() else None

    def rows(self, role: str, slot: str, count: int) -> Array | None:
        """The first `count` rows of a 2-D top-level tensor (shared token rows)."""
        name = self.name(role, slot, None)
        if name is None or len(self.side.ref(name).info.shape) != 2:
            return None
        info = self.side.ref(name).info
        n = min(count, info.shape[0])
        raw = self.side.ref(name).file.read(name, 0, n * info.shape[1])
        x = np.asarray(decode(raw), dtype=np.float64).reshape(n, info.shape[1])
        return x if np.isfinite(x).all() else None

    def gain(self, slot: str, layer: int, hidden: int) -> Array:
        """The norm gain feeding a projection (ones when absent or mis-shaped)."""
        g = self.get("norm", slot, layer)
        return g if g is not None and g.shape == (hidden,) else np.ones(hidden)


def _profile(m: Model, layers: list[int], hidden: int, shared: int) -> tuple[Array, str]:
    """Per hidden dim, a feature vector from everything that touches the residual stream."""
    feats: list[Array] = []
    sources: list[str] = []
    for role, slot in (("embedding", "tok"), ("lm_head", "lm_head")):
        x = m.rows(role, slot, shared) if shared else None
        if x is not None and x.shape[1] == hidden:
            feats.append(x.T)
            sources.append(f"{role} ({x.shape[0]} shared rows)")
    norms = [k for k in m.side.by_key if k.role == "norm" and k.expert is None]
    for k in sorted(norms, key=lambda k: (k.layer or -1, k.slot, k.param)):
        g = m.get(k.role, k.slot, k.layer, k.param)
        if g is not None and g.shape == (hidden,):
            feats.append(g[:, None])
    sources.append(f"{len(norms)} norms")
    for layer in layers:
        for role, slot in _INPUT.items():
            w = m.get(role, role, layer)
            if w is not None and w.ndim == 2 and w.shape[1] == hidden:
                feats.append(np.linalg.norm(w * m.gain(slot, layer, hidden), axis=0)[:, None])
        for role in ("o", "down"):
            w = m.get(role, role, layer)
            if w is not None and w.ndim == 2 and w.shape[0] == hidden:
                feats.append(np.linalg.norm(w, axis=1)[:, None])
    return (np.concatenate(feats, axis=1) if feats else np.zeros((hidden, 0))), ", ".join(sources)


def _hidden_size(m: Model) -> int | None:
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


def _shared_rows(a: Model, b: Model) -> int:
    """How many leading embedding rows both models have (vocabularies by ID)."""
    na, nb = a.name("embedding", "tok", None), b.name("embedding", "tok", None)
    if na is None or nb is None:
        return 0
    return min(a.side.ref(na).info.shape[0], b.side.ref(nb).info.shape[0], EMB_ROWS)


def _unit_features(m: Model, layer: int, hidden: int, limit: int | None) -> Array | None:
    """Gain-folded up/gate rows and down columns of one layer (optionally the first units)."""
    up, down = m.get("up", "up", layer), m.get("down", "down", layer)
    if up is None or down is None or up.shape[1] != hidden or down.shape != up.shape[::-1]:
        return None
    gate = m.get("gate", "gate", layer)
    g = m.gain("mlp_norm", layer, hidden)
    parts = [up * g] + ([gate * g] if gate is not None and gate.shape == up.shape else [])
    parts.append(down.T)
    return np.stack(parts)[:, :limit]  # (parts, units, hidden)


def _mlp_test(
    a: Model, b: Model, la: int, lb: int, hidden: int, perm: Array, rng: np.random.Generator
) -> Calibrated | None:
    """Assignment of MLP units after hidden alignment; null: B's hidden dims relabelled."""
    proj = rng.standard_normal((hidden, K_UNIT)) / sqrt(K_UNIT)
    xa = _unit_features(a, la, hidden, None)
    xb = _unit_features(b, lb, hidden, MAX_B_UNITS)
    if xa is None or xb is None or xa.shape[0] != xb.shape[0]:
        return None
    xb = xb[:, :, perm]
    fa = np.concatenate([p @ proj for p in xa], axis=1)

    def feature_b(sigma: Array) -> Array:
        return np.concatenate([p[:, sigma] @ proj for p in xb], axis=1)

    return relabel_test(fa, feature_b, hidden, 19, rng, 4096)


def _heads(m: Model, layer: int, hidden: int) -> tuple[Array, ...] | None:
    """q, k, v (gain-folded) and o of one layer, or None."""
    g = m.gain("attn_norm", layer, hidden)
    q, k, v, o = (m.get(r, r, layer) for r in ("q", "k", "v", "o"))
    if q is None or k is None or v is None or o is None:
        return None
    if q.shape[1] != hidden or k.shape[1] != hidden or v.shape[1] != hidden:
        return None
    if o.shape != (hidden, q.shape[0]):
        return None
    return q * g, k * g, v * g, o


def _head_features(w: tuple[Array, ...], heads: int, kv: int, r1: Array, r2: Array) -> Array:
    """Per head, sketches of W_Q^hᵀW_K^h and W_O^h W_V^h (invariant to per-head rotations)."""
    q, k, v, o = w
    d = q.shape[0] // heads
    qs, ks, vs = (x @ r for x, r in ((q, r1), (k, r2), (v, r2)))
    os_ = o.T @ r1  # (heads·d, k)
    out = []
    for h in range(heads):
        g = h // max(heads // kv, 1)
        qh, oh = qs[h * d : (h + 1) * d], os_[h * d : (h + 1) * d]
        kh, vh = ks[g * d : (g + 1) * d], vs[g * d : (g + 1) * d]
        out.append(np.concatenate([(qh.T @ kh).ravel(), (oh.T @ vh).ravel()]))
    return np.asarray(out)


def _head_test(
    a: Model, b: Model, la: int, lb: int, hidden: int, perm: Array, rng: np.random.Generator
) -> Calibrated | None:
    """Assignment of heads on rotation-invariant products; null: hidden dims relabelled."""
    cfg = a.side.ckpt.config
    heads = cfg.get("num_attention_heads")
    kv = cfg.get("num_key_value_heads", heads)
    wa, wb = _heads(a, la, hidden), _heads(b, lb, hidden)
    if not isinstance(heads, int) or not isinstance(kv, int) or heads < 2 or kv < 1:
        return None
    if wa is None or wb is None or any(x.shape != y.shape for x, y in zip(wa, wb, strict=True)):
        return None
    if wa[0].shape[0] % heads or wa[1].shape[0] % kv:
        return None
    q, k, v, o = wb
    wb = (q[:, perm], k[:, perm], v[:, perm], o[perm])
    r1, r2 = (rng.standard_normal((hidden, K_HEAD)) / sqrt(K_HEAD) for _ in range(2))
    fa = _head_features(wa, heads, kv, r1, r2)

    def feature_b(s: Array) -> Array:
        return _head_features((wb[0][:, s], wb[1][:, s], wb[2][:, s], wb[3][s]), heads, kv, r1, r2)

    return relabel_test(fa, feature_b, hidden, 19, rng, 4096)


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
    d = wb - wa
    na = float(np.linalg.norm(wa))
    s = np.linalg.svd(d, compute_uv=False) ** 2
    total = float(s.sum())
    rank = int(np.searchsorted(np.cumsum(s), 0.9 * total) + 1) if total > 0 else 0
    rel = sqrt(total) / na if na > 0 else 0.0
    return DeltaStat(name=name, layer=layer, rel_l2=rel, rank90=rank, full_rank=min(d.shape))


def _deltas(a: Model, b: Model, la: int, lb: int, perm: Array) -> list[DeltaStat]:
    """Delta statistics of the attention and MLP projections of one aligned layer pair."""
    out = []
    for role in ("q", "k", "v", "o", "up", "gate", "down"):
        wa, wb = a.get(role, role, la), b.get(role, role, lb)
        axis = 0 if role in ("o", "down") else 1  # the side that touches the residual stream
        if wa is None or wb is None or wa.shape != wb.shape or wb.ndim != 2 or wb.size == 0:
            continue
        if wb.shape[axis] != perm.size:
            continue  # not a residual-width projection (or an empty one): nothing to align
        wb = wb[perm] if axis == 0 else wb[:, perm]
        if (d := _delta(role, la, wa, wb)) is not None:
            out.append(d)
    return out


def compare_aligned(
    a_side: Side, b_side: Side, a_to_b: dict[int, int], layers: list[int], seed: int, job: Any
) -> AlignedEvidence | None:
    """Align B to A and run the calibrated unit and head tests on `layers`."""
    a, b = Model(a_side), Model(b_side)
    hidden = _hidden_size(a)
    if hidden is None or hidden != _hidden_size(b):
        return None
    shared = _shared_rows(a, b)
    pa, source = _profile(a, layers, hidden, shared)
    pb, _ = _profile(b, [a_to_b[la] for la in layers], hidden, shared)
    h = align_hidden(pa, pb, source, 19, seed, 4096) if pa.shape == pb.shape else None
    perm = h.perm if h is not None else np.arange(hidden)
    rng = np.random.default_rng([seed, hidden, 41])
    tests: list[MatchSummary] = []
    deltas: list[DeltaStat] = []
    for la in layers:
        job.check()
        lb = a_to_b[la]
        for kind, run in (("mlp_units", _mlp_test), ("heads_invariant", _head_test)):
            t: Calibrated | None = run(a, b, la, lb, hidden, perm, rng)
            if t is not None:
                tests.append(_summary(kind, t, la, lb))
        deltas += _deltas(a, b, la, lb, perm)
    z = stouffer([t.z for t in tests])
    return AlignedEvidence(
        hidden=_hidden_evidence(h) if h is not None else None,
        layers=tests,
        z=z,
        p=normal_sf(z) if z is not None else None,
        related=z is not None and z >= ALIGNED_Z,
        deltas=deltas,
        skipped=sorted(set(a.skipped + b.skipped)),
    )
