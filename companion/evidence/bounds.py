"""Judgements that the loss alone cannot settle: fresh heads, eval-only logs, negative values.

Facts used: a random init's first cross-entropy is ≈ ln V or above; plausible language-model
vocabularies span 2^8..2^20 tokens, so ln V lies in 5.545..13.86 nats (character-level
vocabularies of ~65 symbols, ln 65 = 4.17, are the one common exception below). A pretrained
body under a freshly initialised output head also starts at ln V, so a first loss at ln V
shows a random *head*, not necessarily a random body.
"""

from __future__ import annotations

import math

import numpy as np

from companion.evidence.initial import AT_LN_V, LLM_LN_V, First
from companion.evidence.schemas import Finding, Reason
from companion.evidence.series import ParsedLog

HEAD_TOKENS = 1e8  # a trained body under a new head reaches TRAINED_FRAC*ln V within this
TRAINED_FRAC = 0.35
GRAD_RATIO = 5.0


def eval_only(log: ParsedLog, findings: list[Finding]) -> Finding | None:
    """An evaluation-only log is weaker evidence: downgrade strong initial-loss findings."""
    if log.window_kind != "eval":
        return None
    for f in findings:
        if f.name in ("initial_loss", "initial_eval") and f.strength == "strong":
            f.strength = "moderate"
    return Finding(
        name="eval_only",
        direction="neutral",
        strength="info",
        message=f"Only evaluation figures ({log.metric}) are logged, no training loss: weaker "
        "evidence (the evaluation set may differ from the training data and evaluations are "
        "sparse), so no initial-loss finding is rated strong.",
        figures={"points": len(log.series)},
    )


def _tokens_at(log: ParsedLog, index: int) -> float | None:
    """Tokens seen by the record at `index` (column, or steps × tokens per step)."""
    s = log.series
    if math.isfinite(s.tokens[index]):
        return float(s.tokens[index])
    if log.tokens_per_step:
        return float(s.step[index]) * log.tokens_per_step
    return None


def _grad_ratio(log: ParsedLog) -> float | None:
    """Median grad norm of the first 5 logged steps over that of steps 50–200."""
    g = [(s, v) for s, v in log.grad_norms if math.isfinite(v)]
    early = [v for _, v in g[:5]]
    late = [v for s, v in g if 50 <= s <= 200]
    if len(early) < 3 or len(late) < 3 or float(np.median(late)) <= 0:
        return None
    return float(np.median(early)) / float(np.median(late))


def fresh_head(log: ParsedLog, first: First, ln_v: float | None) -> Finding | None:
    """A first loss at ln V: a random init, or a pretrained body under a fresh head?"""
    if ln_v is None or first.loss < ln_v - AT_LN_V:
        return None
    s = log.series
    figs: dict[str, float | int | str | None] = {}
    ratio = _grad_ratio(log)
    if ratio is not None:
        figs["grad_norm_ratio"] = round(ratio, 3)
    trained = TRAINED_FRAC * ln_v
    hit = np.flatnonzero(np.isfinite(s.loss) & (s.loss < trained))
    tokens = _tokens_at(log, int(hit[0])) if hit.size else None
    if tokens is not None:
        figs["tokens_to_trained_level"] = tokens
    if ln_v >= LLM_LN_V and tokens is not None and tokens <= HEAD_TOKENS:
        return Finding(
            name="fresh_head",
            direction="warm_start",
            strength="moderate",
            message=f"The loss reaches {trained:.2f} nats ({TRAINED_FRAC:.0%} of ln V) after "
            f"only {tokens:.3g} tokens; a random body needs far more (≥ {HEAD_TOKENS:.0e}): "
            "a pretrained body under a freshly initialised head.",
            figures=figs,
        )
    if ratio is not None and ratio >= GRAD_RATIO:
        return Finding(
            name="fresh_head",
            direction="warm_start",
            strength="weak",
            message=f"The gradient norm of the first steps is {ratio:.1f}× that of steps "
            "50–200, as over a trained body with a new head (a random init's is not "
            "several times larger).",
            figures=figs,
        )
    decide = (
        "the gradient norm of the first steps (several times larger over a trained body) "
        f"or the tokens needed to reach {trained:.2f} nats (a trained body needs "
        f"≤ {HEAD_TOKENS:.0e})"
    )
    return Finding(
        name="fresh_head",
        direction="neutral",
        strength="info",
        message="The first loss at ln V is consistent with random init or a freshly "
        "initialised head (a pretrained body with a new output layer also starts at ln V); "
        f"what would decide it: {decide}.",
        figures=figs,
    )


def caveats(verdict: str, findings: list[Finding]) -> list[Reason]:
    """Reasons that qualify a verdict (fresh-head ambiguity, eval-only evidence)."""
    out = []
    for f in findings:
        if f.name == "fresh_head" and f.direction == "neutral" and verdict == "from_scratch":
            out.append(Reason(text=f.message, figures=dict(f.figures)))
        if f.name == "eval_only":
            out.append(Reason(text=f.message, figures=dict(f.figures)))
    return out


def negative_losses(log: ParsedLog) -> Finding | None:
    """Negative values are no cross-entropy: set aside (as NaN) and reported, never judged."""
    loss = log.series.loss
    neg = np.flatnonzero(loss < 0)
    if neg.size == 0:
        return None
    first = float(log.series.step[neg[0]])
    loss[neg] = np.nan
    return Finding(
        name="negative_loss",
        direction="neutral",
        strength="info",
        message=f"{neg.size} negative loss value(s) (first at step {first:g}) set aside: a "
        "cross-entropy is never negative (a different objective, or a logging bug).",
        figures={"count": int(neg.size), "first_step": first},
    )
