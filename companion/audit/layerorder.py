"""Layers reordered: a free layer map by assignment, tested against the in-order map.

The in-order map (the identity for equal depths, alignment.map_layers' monotone map
otherwise) is compared with a free map on the same per-layer similarity (mean sample
Pearson over the shared sites, as pairing.layer_score): a linear assignment of B layers to
A layers (one-to-one; for a deeper B each B layer takes its best A layer). The statistic is
the gain in mean matched similarity of the free map over the in-order one. Its null runs the
same two maps on unrelated weights: B's standardized samples times random signs, one sign
vector per site shared by every B layer, which keeps each tensor's scale pattern and B's
cross-layer structure and cuts only the link to A (under independence the observation and
the draws are exchangeable). The map departs from the in-order one only when the free map
puts A's layers out of order and its gain beats every draw by Z_DECISIVE null sd.

A hidden-dimension permutation makes every element-wise score noise; then (find_order) the
test runs again on the per-layer norm gains read in A's hidden order, recovered from the
token embedding alone (aligned.embedding_perm), so no layer's order enters that permutation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from companion.audit.aligned import embedding_perm
from companion.audit.alignment import map_layers
from companion.audit.hidden import Calibrated, null_draws
from companion.audit.matching import Z_DECISIVE, assignment
from companion.audit.pairing import Side, shared_sites
from companion.audit.rowstats import Findings
from companion.audit.schemas import Derivation, Reason
from companion.audit.vocab import VocabMaps

Array = np.ndarray[Any, Any]
SUB = 4096  # sample elements per tensor in the similarity (observation and null alike)
MAX_SITES = 16  # sites used (dense ones first): a many-expert MoE would have hundreds
BUDGET = 1 << 22  # float32 elements per side over every site and layer (16 MB)
DRAWS = 19
_SIGNS = np.array([-1.0, 1.0], np.float32)
HIDDEN_ORDER = "norm gains in A's hidden order (recovered from the embedding)"


@dataclass(frozen=True)
class Site:
    """One site's standardized samples: rows are layers (zero rows where absent)."""

    za: Array
    zb: Array
    ma: Array  # A layers present (and not constant)
    mb: Array


@dataclass(frozen=True)
class LayerOrder:
    """The free layer map, the in-order one, and the calibrated test of the gain."""

    layers_a: list[int]
    layers_b: list[int]
    free: Array  # A index of each B layer (free map)
    order: Array  # A index of each B layer (in-order map)
    free_mean: float
    order_mean: float
    null_free_mean: float  # the free map's mean matched similarity on unrelated weights
    test: Calibrated
    scored_by: str = "samples"

    @property
    def moved(self) -> int:
        """B layers the free map gives another A layer than the in-order map."""
        return int(np.count_nonzero(self.free != self.order))

    @property
    def reordered(self) -> bool:
        """Out of order, and the gain above every draw by Z_DECISIVE null sd."""
        t = self.test
        return (
            out_of_order(self.free, len(self.layers_a) < len(self.layers_b))
            and t.null.size > 0
            and t.observed > float(t.null.max())
            and t.z >= Z_DECISIVE
        )

    def a_to_b(self) -> dict[int, int]:
        """A layer -> the first B layer the free map gives it."""
        out: dict[int, int] = {}
        for j, i in enumerate(self.free):
            out.setdefault(self.layers_a[int(i)], self.layers_b[j])
        return out


def _standard(x: Array) -> tuple[Array, bool]:
    """Centre and scale one sample (non-finite values zeroed); whether it varies."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    x = x - x.mean()
    sd = float(np.sqrt(np.mean(x * x)))
    return ((x / sd) if sd > 0 else x).astype(np.float32), sd > 0


def _rows(
    side: Side,
    site: Any,
    layers: list[int],
    shape: tuple[int, ...],
    sub: int,
    perm: Array | None = None,
) -> tuple[Array, Array] | None:
    """A side's standardized samples of one site and shape (see `stack`); with `perm`, the
    whole vectors read in that hidden order."""
    rows: list[Array | None] = []
    for layer in layers:
        name = side.at(site, layer)
        ok = name is not None and name in side.samples and side.ref(name).info.shape == shape
        x = side.samples[name] if ok and name is not None else None
        rows.append(x if perm is None or x is None else x[perm])
    return stack(rows, sub)


def stack(rows: list[Array | None], sub: int = SUB) -> tuple[Array, Array] | None:
    """One row per layer: `sub` evenly spaced elements of its sample, standardized (zeros
    where the layer has none), and which layers have one that varies; None if none has one."""
    sizes = [x.size for x in rows if x is not None]
    if not sizes or sizes[0] < 2:
        return None
    n = sizes[0]
    pick = np.unique(np.linspace(0, n - 1, min(n, sub)).round().astype(np.int64))
    z = np.zeros((len(rows), pick.size), np.float32)
    present = np.zeros(len(rows), dtype=bool)
    for k, row in enumerate(rows):
        if row is not None and row.size == n:
            z[k], present[k] = _standard(row[pick])
    return z, present


def collect(a: Side, b: Side, perm: Array | None = None) -> tuple[list[int], list[int], list[Site]]:
    """Both sides' layers and standardized samples of the shared per-layer sites (at most
    MAX_SITES, non-expert first; fewer elements each when the layers are many: BUDGET).

    With a hidden permutation `perm` (B's dims in A's order), only the per-layer vectors
    over the hidden dims (norm gains, whole in the samples) are used, B's in A's order."""
    la, lb = a.layers(), b.layers()
    candidates = []
    for site in sorted(shared_sites(a, b), key=lambda s: (s[2] is not None, str(s))):
        shapes = {a.ref(n).info.shape for layer in la if (n := a.at(site, layer)) is not None}
        keep = (lambda shape: True) if perm is None else (lambda shape: shape == perm.shape)
        candidates += [(site, shape) for shape in sorted(shapes) if keep(shape)]
    candidates = candidates[:MAX_SITES]
    sub = max(256, min(SUB, BUDGET // max(len(candidates) * max(len(la), len(lb)), 1)))
    if perm is not None:
        sub = max(sub, perm.size)  # whole vectors: a hidden order needs every dim
    sites: list[Site] = []
    for site, shape in candidates:
        sa, sb = _rows(a, site, la, shape, sub), _rows(b, site, lb, shape, sub, perm)
        if sa is None or sb is None or sa[0].shape[1] != sb[0].shape[1]:
            continue
        if sa[1].any() and sb[1].any():
            sites.append(Site(sa[0], sb[0], sa[1], sb[1]))
    return la, lb, sites


def scores(sites: list[Site], flip: Callable[[int], Array] | None = None) -> Array:
    """Mean Pearson of every A layer with every B layer (B's samples times `flip` signs)."""
    total = count = None
    for s in sites:
        n = s.za.shape[1]
        zb = s.zb if flip is None else s.zb * flip(n)[None, :]
        r = (s.za @ zb.T).astype(np.float64) / n
        c = np.outer(s.ma, s.mb).astype(np.float64)
        total = r * c if total is None else total + r * c
        count = c if count is None else count + c
    assert total is not None and count is not None
    out: Array = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return out


def free_map(score: Array) -> Array:
    """A index of each B layer: one-to-one by assignment (B not deeper), else best A layer."""
    na, nb = score.shape
    if nb > na:
        return np.asarray(np.argmax(score, axis=0), dtype=np.int64)
    rows, cols = assignment(-score.T)
    out = np.empty(nb, dtype=np.int64)
    out[rows] = cols
    return out


def order_map(score: Array) -> Array:
    """A index of each B layer under the in-order map (alignment.map_layers)."""
    na, nb = score.shape
    b_to_a = map_layers(list(range(na)), list(range(nb)), score)
    return np.array([b_to_a[j] for j in range(nb)], dtype=np.int64)


def _mean(score: Array, chosen: Array) -> float:
    """Mean similarity of the chosen cells (one per B layer)."""
    return float(score[chosen, np.arange(chosen.size)].mean())


def means(score: Array) -> tuple[float, float]:
    """Mean matched similarity of the free map and of the in-order map."""
    return _mean(score, free_map(score)), _mean(score, order_map(score))


def out_of_order(free: Array, deeper: bool) -> bool:
    """Whether A's layers appear out of order in B (for a deeper B: by first appearance)."""
    seq = np.unique(free, return_index=True)[1] if deeper else np.arange(free.size)
    first = free[np.sort(seq)]  # each A layer at its first B position, in B order
    return bool(np.any(np.diff(first) <= 0))


def order_test(
    sites: list[Site],
    la: list[int],
    lb: list[int],
    seed: int,
    check: Callable[[], None],
    early: bool = True,
) -> LayerOrder:
    """The free and in-order maps with the calibrated test of the free map's gain."""
    score = scores(sites)
    free, order = free_map(score), order_map(score)
    observed = _mean(score, free) - _mean(score, order)
    rng = np.random.default_rng([seed, len(la), len(lb), 59])
    matched: list[float] = []  # the free map's mean under the null, for the report

    def draw() -> float:
        m_free, m_order = means(scores(sites, lambda n: rng.choice(_SIGNS, n)))
        matched.append(m_free)
        return m_free - m_order

    null = null_draws(observed, draw, DRAWS, check, early)
    test = Calibrated(observed, null, free)
    m_free, m_order = _mean(score, free), _mean(score, order)
    return LayerOrder(la, lb, free, order, m_free, m_order, float(np.mean(matched)), test)


def find_order(
    a: Side, b: Side, vocab: VocabMaps, seed: int, check: Callable[[], None]
) -> LayerOrder | None:
    """The layer-order test on the samples; when that finds no order, and B's hidden dims
    are permuted (found from the embedding alone), again on the norm gains in A's order."""
    plain = layer_order(a, b, seed, check)
    if plain is None or plain.reordered:
        return plain
    perm = embedding_perm(a, b, vocab, seed, check)
    if perm is None:
        return plain
    return layer_order(a, b, seed, check, perm) or plain


def layer_order(
    a: Side, b: Side, seed: int, check: Callable[[], None], perm: Array | None = None
) -> LayerOrder | None:
    """Test B's layer order against A's from the samples; None when the free map keeps order."""
    la, lb, sites = collect(a, b, perm)
    if len(lb) < 2 or not la or not sites:
        return None
    free = free_map(scores(sites))
    if not out_of_order(free, len(lb) > len(la)):
        return None  # no reordering to test: the in-order map stands
    o = order_test(sites, la, lb, seed, check)
    return o if perm is None else replace(o, scored_by=HIDDEN_ORDER)


def findings(o: LayerOrder) -> Findings:
    """The reordered layer map as a reason and a `layers_reordered` derivation."""
    t = o.test
    pairs = ",".join(f"{o.layers_a[int(i)]}->{o.layers_b[j]}" for j, i in enumerate(o.free))
    null = f"{float(t.null.mean()):.3f}±{float(t.null.std()):.3f}"
    text = (
        f"layer map: B's layers are A's in another order ({o.moved} of {len(o.layers_b)} moved; "
        f"A->B {pairs}; scored by {o.scored_by}): mean matched layer Pearson "
        f"{o.free_mean:.3f} (unrelated weights: {o.null_free_mean:.3f}) against "
        f"{o.order_mean:.3f} in order; gain {t.observed:.3f} vs null {null} "
        f"(z {t.z:.1f}, p {t.p:.3f}, {t.null.size} draws)."
    )
    reason = Reason(
        kind="layer_order",
        strength="strong",
        statement=text,
        figure=o.free_mean,
        baseline=o.order_mean,
        baseline_name="in-order layer map; null: same maps on B's samples with random signs",
        z=t.z,
        p=t.p,
    )
    derivation = Derivation(
        kind="layers_reordered",
        figures={
            "layers_moved": o.moved,
            "layers_b": len(o.layers_b),
            "layers_a": len(o.layers_a),
            "map": pairs,
            "scored_by": o.scored_by,
            "matched_pearson": round(o.free_mean, 4),
            "in_order_pearson": round(o.order_mean, 4),
            "null_matched_pearson": round(o.null_free_mean, 4),
            "gain": round(t.observed, 4),
            "null_gain_mean": round(float(t.null.mean()), 4),
            "null_gain_sd": round(float(t.null.std()), 4),
            "z": round(t.z, 1),
            "p": round(t.p, 4),
            "draws": int(t.null.size),
        },
        confidence="high",
        evasive=True,
        statement=f"B's layers are A's in another order ({o.moved} moved): an evasion of "
        "layer-by-layer comparison.",
    )
    return Findings(reasons=[reason], derivations=[derivation])
