"""Name how B was made from A (fine-tune, LoRA merge, quantized, pruned, permuted, rotated, ...)."""

from __future__ import annotations

from math import log
from statistics import median
from typing import TYPE_CHECKING

from companion.audit.isotropy import NOISE_RATIO, isotropy
from companion.audit.merge_fit import merge_derivation
from companion.audit.schemas import Derivation, MergeFit, RoleSummary, TensorResult, Verdict
from companion.audit.shapes import reconcile
from companion.audit.symview import ALIGNED_Z

if TYPE_CHECKING:
    from companion.audit.summarize import Streams

R_INVARIANT = 0.5  # invariant matched r a B without maps keeps only when r_elementwise² is high
R_ROTATED = 0.5  # element-wise Pearson of a mapped q/k (v/o) pair after the alignment
LORA_SHARE = 0.1  # rank holding 90 % of the delta energy, as a share of the full rank
_BITS = {"F64": 64, "F32": 32, "F16": 16, "BF16": 16, "F8_E4M3": 8, "F8_E5M2": 8, "I8": 8}


def _permuted(s: Streams, per_role: list[RoleSummary]) -> Derivation | None:
    """Hidden dims, MLP units or heads at other indices in B (an exact, evasive symmetry)."""
    figures: dict[str, float | int | str] = {}
    ev = s.aligned
    if ev is not None and ev.related and ev.hidden is not None and ev.hidden.moved:
        figures["hidden_dims_moved"] = ev.hidden.moved
        figures["hidden_dims"] = ev.hidden.dims
    tests = [t for t in (ev.layers if ev is not None and ev.related else [])]
    tests += [t for g in per_role if g.related for t in g.permutation]
    for kind in ("mlp_units", "heads", "heads_invariant"):
        moved = [t.moved for t in tests if t.kind == kind]
        if moved and median(moved) > 0.5:
            figures[f"{kind}_moved_share"] = round(median(moved), 3)
    if not figures:
        return None
    return Derivation(
        kind="permuted",
        figures=figures,
        confidence="high",
        evasive=True,
        statement="B is a function-preserving permutation of A's weights (an evasion).",
    )


def _rotated(s: Streams, rows: list[TensorResult]) -> Derivation | None:
    """Per-head invertible maps inside attention: the rotation-invariant head products match
    A's while q/k (or v/o) do not, element-wise, even after the hidden and head alignment.

    Without maps the invariant products are quadratic in the weights, so their matched r
    sits near the element-wise r squared: it cannot stay above R_INVARIANT while both
    matrices of a pair fall below R_ROTATED."""
    ev = s.aligned
    inv = [
        t
        for t in (ev.layers if ev is not None and ev.related else [])
        if t.kind == "heads_invariant"
    ]
    inv = [t for t in inv if t.elementwise is not None]
    if not inv or median(t.z for t in inv) < ALIGNED_Z:
        return None
    if median(t.observed for t in inv) < R_INVARIANT:
        return None
    pairs = [
        p
        for p in ("qk", "vo")
        if median(max(t.elementwise[r] for r in p) for t in inv if t.elementwise) < R_ROTATED
    ]
    if not pairs:
        return None
    plain = [r.metrics.pearson for r in rows if r.role in ("q", "k", "v", "o")]
    figures: dict[str, float | int | str] = {
        "maps": ",".join(pairs),
        "heads_invariant_r": round(median(t.observed for t in inv), 3),
        "heads_invariant_null_r": round(median(t.null_mean for t in inv), 3),
        "heads_invariant_z": round(median(t.z for t in inv), 1),
        "layers": len(inv),
    }
    for p in pairs:
        figures[f"aligned_pearson_{p}"] = round(
            median(max(t.elementwise[r] for r in p) for t in inv if t.elementwise), 3
        )
    if plain_r := [r for r in plain if r is not None]:
        figures["attn_pearson_median"] = round(median(plain_r), 3)
    return Derivation(
        kind="rotated",
        figures=figures,
        confidence="high",
        evasive=True,
        statement="B's attention heads are A's under invertible per-head maps "
        f"({' and '.join(_MAPS[p] for p in pairs)}): a function-preserving rotation (an evasion).",
    )


_MAPS = {"qk": "W_Q <- A·W_Q, W_K <- A^-T·W_K", "vo": "W_V <- B·W_V, W_O <- W_O·B^-1"}


def _unrotated(d: Derivation) -> Derivation | None:
    """A permutation without the element-wise head match, which maps inside heads defeat
    (the rotation-invariant heads test still says whether heads moved); None if nothing
    is left."""
    figures = {k: v for k, v in d.figures.items() if not k.startswith("heads_moved")}
    return d.model_copy(update={"figures": figures}) if figures else None


def _rescaled(rows: list[TensorResult], per_role: list[RoleSummary]) -> Derivation | None:
    """Norm gains rescaled with compensation in the next projection (scale-invariant match)."""
    ratios = [r.metrics.norm_ratio for r in rows if r.group == "norm" and r.metrics.norm_ratio]
    spread = median(abs(log(x)) for x in ratios) if ratios else 0.0
    folded = [g for g in per_role if g.related and "scale-invariant" in " ".join(g.evidence)]
    if spread < 0.1 or not folded:
        return None
    return Derivation(
        kind="rescaled",
        figures={"median_abs_log_norm_ratio": round(spread, 3)},
        confidence="medium",
        evasive=True,
        statement="Norm gains rescaled and compensated downstream (an evasion).",
    )


def _quantized(rows: list[TensorResult]) -> Derivation | None:
    """Stored at lower precision, with a residual at that dtype's rounding size."""
    lower = [r for r in rows if _BITS.get(r.dtype_b, 32) < _BITS.get(r.dtype_a, 32)]
    if not lower or 2 * len(lower) < len(rows):
        return None
    rel = median(r.metrics.rel_l2 or 0.0 for r in lower)
    return Derivation(
        kind="quantized",
        figures={"dtype_a": lower[0].dtype_a, "dtype_b": lower[0].dtype_b, "rel_l2": rel},
        confidence="high" if rel < 0.05 else "medium",
        statement=f"Weights cast from {lower[0].dtype_a} to {lower[0].dtype_b}.",
    )


def _delta_kind(s: Streams, mapped: frozenset[str] = frozenset()) -> Derivation | None:
    """Fine-tune (dense small delta), LoRA-merged (low-rank delta) or noise-added; the roles
    in `mapped` (rotated q/k or v/o: B - A is the map, not an update) are left out."""
    ev = s.aligned
    deltas = [d for d in (ev.deltas if ev is not None else []) if d.rel_l2 > 1e-3]
    deltas = [d for d in deltas if d.name not in mapped]
    if not deltas:
        return None
    rel = median(d.rel_l2 for d in deltas)
    if rel > 1.2:  # B - A as large as the weights: units still unaligned, nothing to name
        return None
    shares = [d.rank90 / d.full_rank for d in deltas]
    figures: dict[str, float | int | str] = {"delta_rel_l2": round(rel, 4)}
    low = [d for d in deltas if d.rank90 / d.full_rank <= LORA_SHARE]
    for d in low:
        figures[f"rank90.{d.layer}.{d.name}"] = d.rank90
    if low and 2 * len(low) >= len(deltas):
        return Derivation(
            kind="lora_merged",
            figures=figures,
            confidence="high",
            statement="B - A is low rank in the projections: a merged LoRA.",
        )
    figures["rank90_share_median"] = round(median(shares), 3)
    iso = isotropy(s.a, deltas)  # rank share against a Gaussian delta of the same shapes
    if iso is not None:
        figures["rank90_vs_gaussian"] = round(iso, 3)
    kind = "noise_added" if iso is not None and iso >= NOISE_RATIO else "fine_tune"
    return Derivation(
        kind=kind,
        figures=figures,
        confidence="medium",
        statement="Dense small delta from A: fine-tuning or continued pre-training."
        if kind == "fine_tune"
        else "Isotropic full-rank delta: noise added to A (or a very diffuse fine-tune).",
    )


def _shapes(s: Streams) -> list[Derivation]:
    """Depth pruned / up-scaled and vocabulary extended, from the two layouts."""
    out: list[Derivation] = []
    la, lb = len(s.a.layers()), len(s.b.layers())
    if lb < la:
        out.append(
            Derivation(
                kind="depth_pruned",
                figures={"layers_a": la, "layers_b": lb},
                confidence="high",
                statement=f"{la - lb} of {la} layers removed.",
            )
        )
    elif lb > la:
        out.append(
            Derivation(
                kind="depth_upscaled",
                figures={"layers_a": la, "layers_b": lb},
                confidence="high",
                statement=f"Layers duplicated: {la} -> {lb}.",
            )
        )
    return out + (s.shapes.derivations if s.shapes is not None else [])  # vocab, width, MoE


def name_derivations(
    verdict: Verdict,
    rows: list[TensorResult],
    s: Streams,
    per_role: list[RoleSummary],
    merge_fit: MergeFit | None = None,
) -> list[Derivation]:
    """Every derivation the evidence shows (empty when inconclusive)."""
    if verdict == "independent":
        return [
            Derivation(
                kind="independent",
                confidence="medium",
                statement="No weight evidence of a shared origin.",
            )
        ]
    if verdict != "derived":
        return []
    quantized = _quantized(rows)
    rotated = _rotated(s, rows)
    mapped = frozenset(str(rotated.figures["maps"]).replace(",", "")) if rotated else frozenset()
    permuted = _permuted(s, per_role)
    if rotated is not None and permuted is not None:  # the element-wise head match is moot
        permuted = _unrotated(permuted)
    found = [permuted, rotated, _rescaled(rows, per_role), quantized]
    delta = _delta_kind(s, mapped)
    if quantized is None or (delta is not None and float(delta.figures["delta_rel_l2"]) > 0.05):
        found.append(delta)  # a cast's rounding residual is not a fine-tune
    if (merge := merge_derivation(merge_fit)) is not None:  # it explains B - A: no fine-tune
        found = [d for d in found if d is None or d.kind not in ("fine_tune", "noise_added")]
        found.append(merge)
    return reconcile([d for d in found if d is not None] + _shapes(s))
