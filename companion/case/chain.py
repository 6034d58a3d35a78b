"""Each sub-result as one link of the chain: what it shows, its baseline, its weight.

Read from the sub-results' `facts()` (verdict, reasons) and their typed fields only.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from companion.architecture.schemas import DiffResult, TokenizerResult
from companion.audit.schemas import AuditResult
from companion.audit.schemas import Reason as AuditReason
from companion.case.schemas import Evidence, LayerPoint, Weight
from companion.evidence.schemas import EvidenceSummary


@dataclass(frozen=True)
class Gathered:
    """Everything the engines said about one pair (None: that input was missing)."""

    audit: AuditResult | None = None
    log_a: EvidenceSummary | None = None
    log_b: EvidenceSummary | None = None
    diff: DiffResult | None = None
    tokenizer: TokenizerResult | None = None


def norm_only(audit: AuditResult) -> bool:
    """Whether the audit compared norm gains only (a weak signal on their own)."""
    groups = {t.group for t in audit.per_tensor}
    return bool(groups) and groups <= {"norm"}


def _strongest(reasons: tuple[object, ...]) -> AuditReason | None:
    """The audit reason that weighs most: strong first, then direct tests (never fingerprints)."""
    typed = [r for r in reasons if isinstance(r, AuditReason) and r.kind != "fingerprint"]
    strength = {"strong": 0, "weak": 1, "info": 2}
    kind = {"direct": 0, "permutation": 1, "third_model": 2}
    group = {"attn": 0, "mlp": 1, "expert": 2, "norm": 3}

    def rank(r: AuditReason) -> tuple[int, int, int]:
        return (strength[r.strength], kind.get(r.kind, 9), group.get(r.role or "", 5))

    return min(typed, key=rank, default=None)


def _baseline(r: AuditReason | None) -> str:
    """A reason's baseline as a phrase."""
    if r is None or r.baseline_name is None:
        return "shuffle null of each tensor"
    figure = "" if r.baseline is None else f" = {r.baseline:.4f}"
    return f"{r.baseline_name}{figure}" + ("" if r.z is None else f" (z = {r.z:.1f})")


def weights_link(audit: AuditResult) -> Evidence:
    """The weight audit: element-wise Pearson against the shuffle null."""
    facts = audit.facts()
    top = _strongest(facts.reasons)
    weak = norm_only(audit)
    weight: Weight
    if facts.verdict == "derived":
        weight, points = "decisive", "derived"
    elif facts.verdict == "independent":
        weight, points = ("weak" if weak else "strong"), "independent"
    else:
        weight, points = "none", "neither"
    shows = top.statement if top is not None else f"audit verdict: {facts.verdict}"
    if weak:
        shows += " (norm gains only: about 0.0004 % of a model's weights)"
    return Evidence(
        source="weights",
        tool="audit.compare",
        record_id=audit.record_id,
        verdict=str(facts.verdict),
        shows=shows,
        baseline=_baseline(top),
        weight=weight,
        points=points,
    )


def _ln_v(s: EvidenceSummary) -> str:
    """The log's baseline: ln V, or why it is missing."""
    if s.ln_vocab is None:
        return "ln V unknown (no vocabulary size)"
    return f"ln V = {s.ln_vocab:.2f} (V = {s.vocab_size:,}); a warm start begins near 2–3"


def log_link(s: EvidenceSummary, side: str) -> Evidence:
    """A training log: the first loss against ln V (only B's log speaks about B)."""
    facts = s.facts()
    first = "no first loss" if s.first_loss is None else f"first loss {s.first_loss:.3f}"
    at = "" if s.first_step is None else f" at step {s.first_step:g}"
    reason = next((str(getattr(r, "text", r)) for r in facts.reasons), "")
    weight: Weight = "none"
    points = "neither"
    if side == "B" and facts.verdict == "from_scratch":
        weight, points = "strong", "independent"
    elif side == "B" and facts.verdict == "warm_start":
        weight, points = "moderate", "derived"
    return Evidence(
        source=f"log {side}",
        tool="evidence.summarize",
        record_id=s.record_id,
        verdict=str(facts.verdict),
        shows=f"{first}{at}: {reason}".rstrip(": "),
        baseline=_ln_v(s),
        weight=weight,
        points=points,
    )


def arch_link(d: DiffResult) -> Evidence:
    """The architecture diff: differing shapes rule out an unchanged copy, nothing more."""
    if not d.differences:
        return Evidence(
            source="architecture",
            tool="arch.diff",
            verdict="same",
            shows="The two configs describe the same architecture.",
            baseline="many independent models share one config",
            weight="none",
            points="neither",
        )
    fields = ", ".join(x.field for x in d.differences if x.field not in d.shape_blockers)
    if d.shapes_compatible:
        shows = f"The configs differ ({fields}) but every tensor shape agrees."
        weight: Weight = "weak"
        points = "neither"
    else:
        shows = f"Tensor shapes differ ({', '.join(d.shape_blockers)}); also {fields or 'nothing'}."
        weight, points = "moderate", "independent"
    return Evidence(
        source="architecture",
        tool="arch.diff",
        verdict="differs",
        shows=shows,
        baseline=f"distance {d.distance:.2f} (0 = same architecture)",
        weight=weight,
        points=points,
    )


def tokenizer_link(t: TokenizerResult) -> Evidence:
    """The tokenizer comparison: a shared tokenizer is weak evidence either way."""
    relation = str(t.facts().verdict)
    points = {"same": "derived", "extended": "derived", "unrelated": "independent"}
    shift = "" if t.dominant_shift == 0 else f", dominant ID shift {t.dominant_shift:+d}"
    return Evidence(
        source="tokenizer",
        tool="tokenizer.compare",
        record_id=t.record_id,
        verdict=relation,
        shows=f"{t.shared:,} shared tokens (Jaccard {t.jaccard:.2f}){shift}: {t.hint}",
        baseline="tokenizers are often reused by independent models",
        weight="weak" if relation in points else "none",
        points=points.get(relation, "neither"),
    )


def chain(g: Gathered) -> list[Evidence]:
    """Every link, weights first (they weigh most), then logs, architecture, tokenizer."""
    out = []
    if g.audit is not None:
        out.append(weights_link(g.audit))
    if g.log_b is not None:
        out.append(log_link(g.log_b, "B"))
    if g.log_a is not None:
        out.append(log_link(g.log_a, "A"))
    if g.diff is not None:
        out.append(arch_link(g.diff))
    if g.tokenizer is not None:
        out.append(tokenizer_link(g.tokenizer))
    return out


def layer_points(audit: AuditResult) -> list[LayerPoint]:
    """Per-layer norm-gain similarity with its shuffle band (the picture of the cosine trap)."""
    return [
        LayerPoint(
            layer=t.layer,
            role=t.name_a.rsplit(".", 2)[-2] if t.name_a.count(".") >= 2 else t.role,
            cosine=t.metrics.cosine,
            pearson=t.metrics.pearson,
            null_mean=t.baselines.shuffle_pearson_mean,
            null_sd=t.baselines.shuffle_pearson_sd,
        )
        for t in audit.per_tensor
        if t.group == "norm" and t.layer is not None
    ]


def median(values: list[float | None]) -> float | None:
    """The median of the known values, or None."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None
