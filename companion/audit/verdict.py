"""Decide derived / independent / inconclusive from role summaries, with checkable reasons."""

from __future__ import annotations

from statistics import median
from typing import TYPE_CHECKING

import numpy as np

from companion.audit.render import fmt
from companion.audit.schemas import (
    AlignedEvidence,
    AuditInput,
    Fingerprint,
    Reason,
    RoleSummary,
    TensorResult,
    Verdict,
)

if TYPE_CHECKING:
    from companion.audit.rowstats import Findings

PEARSON_FLOOR = 0.1
CROSS_MARGIN = 0.1
PERM_Z = 5.0
PERM_MARGIN = 0.05
MIN_PARAMS = 2048  # fewer usable elements than this cannot power the tests


def _direct(g: RoleSummary, args: AuditInput) -> Reason | None:
    """Reason from plain element-wise Pearson against the shuffle and cross-layer nulls."""
    r = g.pearson_median
    if r is None:
        return None
    cross = g.cross_layer_pearson_mean
    beats_cross = cross is None or r >= cross + CROSS_MARGIN
    if args.baselines:
        related = r >= PEARSON_FLOOR and (g.significant_frac or 0) >= 0.5 and beats_cross
    else:
        related = r >= 3 * PEARSON_FLOOR
    g.related = g.related or related
    null = f"shuffle null {fmt(g.shuffle_pearson_mean)}±{fmt(g.shuffle_pearson_sd)}"
    text = (
        f"{g.role}: median Pearson {fmt(r)} over {g.tensors} tensors vs {null}, "
        f"cross-layer {fmt(cross)}, random init {fmt(g.random_init_pearson)}"
    )
    if related:
        g.evidence.append("element-wise correlation above its nulls")
    return Reason(
        kind="direct",
        role=g.role,
        strength="strong" if related else "info",
        statement=text + (" — related." if related else " — inside the nulls."),
        figure=r,
        baseline=g.shuffle_pearson_mean if cross is None else cross,
        baseline_name="shuffle null" if cross is None else "cross-layer",
        z=g.z_median,
    )


def _trap(g: RoleSummary, args: AuditInput) -> Reason | None:
    """Name the cosine trap when cosine is high but Pearson sits inside its null."""
    if g.cosine_traps == 0:
        return None
    return Reason(
        kind="cosine_trap",
        role=g.role,
        strength="info",
        statement=(
            f"Cosine trap in {g.role}: {g.cosine_traps} tensors have cosine ≥ 0.9 (median "
            f"{fmt(g.cosine_median, 4)}) but Pearson {fmt(g.pearson_median)} is inside its "
            f"shuffle null; shuffled coordinates score cosine {fmt(g.shuffle_cosine_mean, 4)} "
            f"and two random inits {fmt(g.random_init_cosine, 4)}. The raw cosine only "
            "reflects a shared mean (gains near one), not a shared origin."
        ),
        figure=g.cosine_median,
        baseline=g.shuffle_cosine_mean,
        baseline_name="shuffle null cosine",
    )


def _folded(g: RoleSummary, args: AuditInput) -> Reason | None:
    """Scale-invariant evidence: norm gains folded into the next linear layer."""
    r = g.folded_pearson_median
    if r is None:
        return None
    cross = g.cross_layer_pearson_mean
    related = r >= 3 * PEARSON_FLOOR and (cross is None or r >= cross + CROSS_MARGIN)
    if related:
        g.related = True
        g.evidence.append("scale-invariant (gain-folded) correlation")
    return Reason(
        kind="scale_invariant",
        role=g.role,
        strength="strong" if related else "info",
        statement=(
            f"{g.role}: Pearson of weights with the preceding norm gain folded in (invariant "
            f"to rescaling a gain and compensating in the next layer) {fmt(r)} vs direct "
            f"{fmt(g.pearson_median)}, cross-layer {fmt(cross)}."
        ),
        figure=r,
        baseline=cross,
        baseline_name="cross-layer",
    )


def _permutation(g: RoleSummary, args: AuditInput) -> Reason | None:
    """Evidence from matching units / heads by linear assignment."""
    if not g.permutation or g.permutation_z is None:
        return None
    gap = median(t.observed - t.null_mean for t in g.permutation)
    related = g.permutation_z >= PERM_Z and gap >= PERM_MARGIN
    obs = median(t.observed for t in g.permutation)
    null = median(t.null_mean for t in g.permutation)
    moved = median(t.moved for t in g.permutation)
    p = max(t.p for t in g.permutation)
    if related:
        g.related = True
        g.evidence.append("permutation-robust matching above its null")
    kind = g.permutation[0].kind.replace("_", " ")
    return Reason(
        kind="permutation",
        role=g.role,
        strength="strong" if related else "info",
        statement=(
            f"{g.role}: after matching {kind} by linear assignment in {len(g.permutation)} "
            f"layers, matched correlation {fmt(obs)} vs null {fmt(null)} (Stouffer z "
            f"{fmt(g.permutation_z, 1)}, worst-layer p {fmt(p)}); {moved:.0%} of units "
            "matched a different index" + (" (B is permuted)." if related and moved > 0.5 else ".")
        ),
        figure=obs,
        baseline=null,
        baseline_name="mismatched-projection null",
        z=g.permutation_z,
        p=p,
    )


def _third(g: RoleSummary, args: AuditInput) -> Reason | None:
    """Compare A–B with A–C when a third model was given."""
    if g.third_pearson_median is None or g.pearson_median is None:
        return None
    return Reason(
        kind="third_model",
        role=g.role,
        statement=(
            f"{g.role}: A–B Pearson {fmt(g.pearson_median)} vs A–C (third model) "
            f"{fmt(g.third_pearson_median)}."
        ),
        figure=g.pearson_median,
        baseline=g.third_pearson_median,
        baseline_name="third model",
    )


def _usable(r: TensorResult) -> bool:
    """A row whose correlation is defined (not constant, all-NaN or zero-size on a side)."""
    return r.metrics.pearson is not None and bool(r.metrics.std_a) and bool(r.metrics.std_b)


def _aligned(ev: AlignedEvidence) -> Reason | None:
    """Evidence after undoing hidden, unit, head and scale symmetries (or why none ran)."""
    if not ev.layers:
        note = ev.stopped_early
        return None if not note else Reason(kind="aligned", statement=note[0].upper() + note[1:])
    h = ev.hidden
    text = ""
    if h is not None:
        text = (
            f"hidden alignment ({h.source}): {h.one_to_one} of {h.dims} dims matched "
            f"one-to-one, {h.moved} moved, mean matched |r| {h.observed:.3f} vs null "
            f"{h.null_mean:.3f} (row-mixing null, p {h.p:.3f} over {h.draws}); "
        )
    units = [t for t in ev.layers if t.kind == "mlp_units"]
    heads = [t for t in ev.layers if t.kind != "mlp_units"]
    for label, ts in (("MLP units", units), ("heads (QKᵀ, OV invariants)", heads)):
        if ts:
            obs = median(t.observed for t in ts)
            null = median(t.null_mean for t in ts)
            text += f"{label} matched r {obs:.3f} vs null {null:.3f} in {len(ts)} layers; "
    draws = ev.layers[0].draws
    return Reason(
        kind="aligned",
        role="all",
        strength="strong" if ev.related else "info",
        statement=(
            f"After alignment: {text}Stouffer z {fmt(ev.z, 1)} over {len(ev.layers)} layer "
            f"tests (null: B's hidden dims relabelled at random, {draws} draws each)"
            + (" — related." if ev.related else " — inside the null.")
        ),
        figure=ev.z,
        baseline=0.0,
        baseline_name="hidden-relabelling null (same assignment)",
        z=ev.z,
        p=ev.p,
    )


def _gate(compared: list[RoleSummary], rows: list[TensorResult], dropped: int) -> Reason | None:
    """An inconclusive reason when the inputs cannot support any verdict."""
    usable = [r for r in rows if _usable(r)]
    if not compared or not usable:
        return Reason(
            kind="degenerate",
            strength="strong",
            statement=(
                f"No comparable tensors: {len(rows) - len(usable)} compared tensors are "
                f"constant, all-zero, all-NaN or empty on a side, {dropped} were excluded as "
                "buffers or constants. Nothing supports either verdict."
            ),
        )
    params = sum(int(np.prod(r.shape)) for r in usable)
    if params < MIN_PARAMS:
        return Reason(
            kind="degenerate",
            strength="strong",
            statement=(
                f"Too few parameters: {params} usable elements (< {MIN_PARAMS}) cannot "
                "power the tests."
            ),
        )
    return None


def _verdict(
    compared: list[RoleSummary],
    rows: list[TensorResult],
    args: AuditInput,
    aligned: AlignedEvidence | None,
    dropped: int,
    shapes: Findings | None = None,
) -> tuple[Verdict, Reason | None]:
    """The verdict and, when a rule rather than a test decided it, that rule's reason."""
    related = [g for g in compared if g.related]
    if related and 2 * len(related) >= len(compared):
        return "derived", None
    if aligned is not None and aligned.related:
        return "derived", None
    if shapes is not None and shapes.related:  # a calibrated test across changed shapes
        return "derived", None
    if not compared and shapes is not None and (only := shapes.only_evidence()) is not None:
        return "inconclusive", only
    if (gate := _gate(compared, rows, dropped)) is not None:
        return "inconclusive", gate
    if related:
        return "inconclusive", Reason(
            kind="coverage",
            strength="weak",
            statement=(
                f"Only {len(related)} of {len(compared)} role groups are related "
                f"({', '.join(g.role for g in related)}): partial reuse or a graft."
            ),
        )
    if args.baselines or all(abs(g.pearson_median or 0) < 0.05 for g in compared):
        return "independent", None
    return "inconclusive", None


def decide(
    per_role: list[RoleSummary],
    rows: list[TensorResult],
    fp: Fingerprint | None,
    args: AuditInput,
    mtp: list[str],
    aligned: AlignedEvidence | None = None,
    dropped: int = 0,
    shapes: Findings | None = None,
) -> tuple[Verdict, list[Reason]]:
    """Apply the rules; mark each role's `related` flag; reasons strongest (decisive) first."""
    reasons: list[Reason] = []
    for g in per_role:
        for make in (_direct, _trap, _folded, _permutation, _third):
            reason = make(g, args)
            if reason is not None:
                reasons.append(reason)
    if aligned is not None and (ar := _aligned(aligned)) is not None:
        reasons.append(ar)
    compared = [
        g for g in per_role if g.role != "other" and (g.pearson_median is not None or g.permutation)
    ]
    reasons += shapes.reasons if shapes is not None else []
    verdict, decisive = _verdict(compared, rows, args, aligned, dropped, shapes)
    if fp is not None and fp.pearson is not None:
        reasons.append(
            Reason(
                kind="fingerprint",
                strength="weak",
                statement=(
                    f"Per-layer std profile correlation {fp.pearson:.3f} over {fp.layers} "
                    f"layers. {fp.caveat}"
                ),
                figure=fp.pearson,
                baseline=0.91,
                baseline_name="unrelated 7B models (known false positive)",
            )
        )
    bad = [r for r in rows if r.metrics.nonfinite_a or r.metrics.nonfinite_b]
    if bad:
        reasons.append(
            Reason(
                kind="nonfinite",
                statement=f"{len(bad)} tensors contain NaN/Inf; those elements were skipped.",
            )
        )
    if mtp:
        reasons.append(
            Reason(
                kind="mtp",
                statement=f"{len(mtp)} multi-token-prediction (MTP) tensors flagged, not matched.",
            )
        )
    order = {"strong": 0, "weak": 1, "info": 2}
    reasons.sort(key=lambda r: (order[r.strength], -abs(r.z or 0.0)))
    if decisive is not None:
        reasons.insert(0, decisive)
    elif verdict == "derived":
        # a strong reason of a related kind decided it: put the strongest such one first
        strong = [r for r in reasons if r.strength == "strong"]
        reasons = strong + [r for r in reasons if r.strength != "strong"]
    return verdict, reasons
