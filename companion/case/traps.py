"""The named traps of the derivation question, and what would change the verdict."""

from __future__ import annotations

from companion.case.chain import Gathered, layer_points, median, norm_only
from companion.case.schemas import Trap, Verdict

RESUMED_STEP = 50  # a log whose first record is later than this is a segment, not a start


def cosine_trap(g: Gathered) -> Trap:
    """Raw cosine of norm gains is ~0.99 for any pair; Pearson against the shuffle null is not."""
    name = "cosine trap"
    if g.audit is None:
        return Trap(name=name, status="not exercised", explanation="No weights were compared.")
    points = layer_points(g.audit)
    cos = median([p.cosine for p in points])
    pearson = median([p.pearson for p in points])
    band = median([p.null_sd for p in points])
    if cos is None or pearson is None:
        return Trap(name=name, status="not exercised", explanation="No norm gains compared.")
    width = "" if band is None else f" (shuffle band ±{3 * band:.3f})"
    return Trap(
        name=name,
        status="avoided",
        explanation=f"Raw cosine of the norm gains is {cos:.3f} (median over layers), which any "
        "two models reach because gains share a positive offset; the verdict uses the "
        f"mean-centred Pearson, {pearson:.3f}{width}, against the shuffle null instead.",
    )


def fresh_head_trap(g: Gathered) -> Trap:
    """A fine-tune with a re-initialised head starts at ln V too."""
    name = "fresh-head fine-tune"
    if g.log_b is None or g.log_b.verdict != "from_scratch":
        return Trap(name=name, status="not exercised", explanation="No log of B starts at ln V.")
    if g.audit is None:
        return Trap(
            name=name,
            status="open",
            explanation="B's log starts at ln V, but no weights were compared: a fine-tune "
            "whose head was re-initialised would start there too.",
        )
    return Trap(
        name=name,
        status="avoided",
        explanation="B's first loss at ln V was not taken alone: the body's weights were "
        f"compared element-wise (audit verdict: {g.audit.verdict}).",
    )


def resumed_log_trap(g: Gathered) -> Trap:
    """A log that starts mid-run says nothing about the run's initial weights."""
    name = "resumed log"
    for side, s in (("B", g.log_b), ("A", g.log_a)):
        if s is None:
            continue
        resumed = any(f.name == "resumes" for f in s.findings)
        late = s.first_step is not None and s.first_step > RESUMED_STEP
        if resumed or late:
            return Trap(
                name=name,
                status="avoided",
                explanation=f"The log of {side} starts at step {s.first_step:g}"
                + (" and has resume discontinuities" if resumed else "")
                + ": its first loss is a checkpoint of the same run, not evidence of a warm "
                "start from another model.",
            )
    return Trap(
        name=name, status="not exercised", explanation="Every log starts at its run's start."
    )


def config_trap(g: Gathered) -> Trap:
    """Matching configs are shared by many independent models; differing ones are not proof."""
    name = "a config match taken as proof"
    if g.diff is None:
        return Trap(name=name, status="not exercised", explanation="No two configs compared.")
    if not g.diff.differences:
        why = "The configs match, and that was given no weight: many independent models share one."
    else:
        why = (
            "The configs differ; that rules out an unchanged copy, not a pruned or extended "
            "derivative, so it weighs at most moderately."
        )
    return Trap(name=name, status="avoided", explanation=why)


def traps(g: Gathered) -> list[Trap]:
    """Every named trap and its status in this case."""
    return [cosine_trap(g), fresh_head_trap(g), resumed_log_trap(g), config_trap(g)]


def would_change(g: Gathered, verdict: Verdict) -> list[str]:
    """The inputs that would change (or settle) the verdict."""
    out = []
    if g.log_b is None:
        out.append(
            "A log of B's first 100 steps would decide the start: a first loss near ln V is a "
            "random start, one near 2–3 a warm start."
        )
    elif g.log_b.ln_vocab is None:
        out.append("B's config.json or tokenizer, so that the log's first loss meets ln V.")
    if g.audit is None:
        out.append(
            "The weights of both (safetensors): element-wise Pearson against the shuffle null "
            "rules a fresh-head fine-tune in or out."
        )
    elif norm_only(g.audit):
        out.append(
            "Attention and MLP tensors of both: norm gains are about 0.0004 % of the weights."
        )
    elif g.audit.verdict == "inconclusive":
        out.append("A third, unrelated model as the audit's baseline, and more tensors.")
    if verdict == "derived":
        out.append(
            "Nothing in a log undoes an element-wise match; only showing that the compared "
            "files are not the released weights would."
        )
    return out
