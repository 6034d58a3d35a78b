"""Findings about a loss series: initial loss vs ln V, averaging, fall rate and warm-up.

Thresholds are facts about random initialisation: at step 0 a random model's
cross-entropy is ln V (higher by about sigma^2/2 with larger init std; 16-22 nats with some
tied-embedding inits); a from-scratch run falls by more than 1 nat in 10-20 steps and needs
thousands of steps to go below 4 nats (LLM vocabularies); fine-tuning starts near 1-3.5.
The first value and the initial-loss rules live in `companion.evidence.initial`.
"""

from __future__ import annotations

import math

import numpy as np

from companion.evidence.initial import (
    BELOW4_STEPS,
    EARLY_STEPS,
    FALL_NATS,
    LLM_LN_V,
    First,
    first_value,
    initial_loss,
)
from companion.evidence.schemas import Finding
from companion.evidence.series import ParsedLog

__all__ = [
    "First",
    "below_four",
    "fall_rate",
    "first_value",
    "initial_eval",
    "initial_loss",
    "warmup",
]


def warmup(log: ParsedLog, first: First) -> tuple[Finding, bool | None]:
    """LR warm-up from ~0 (fresh schedule) versus none (resumed or continued run)."""
    lr = log.series.lr
    finite = np.flatnonzero(np.isfinite(lr))
    if finite.size < 2:
        return Finding(
            name="warmup",
            direction="neutral",
            strength="info",
            message="No learning rate in the log; warm-up cannot be checked.",
        ), None
    peak_i = int(finite[np.argmax(lr[finite])])
    peak, lr0 = float(lr[peak_i]), float(lr[finite[0]])
    figs = {"first_lr": lr0, "peak_lr": peak, "peak_step": float(log.series.step[peak_i])}
    if peak <= 0:
        return Finding(
            name="warmup",
            direction="neutral",
            strength="info",
            message="The learning rate is zero throughout.",
            figures=figs,
        ), None
    ratio = lr0 / peak
    first_step, peak_step = float(log.series.step[finite[0]]), figs["peak_step"]
    figs["ratio"] = round(ratio, 4)
    rising = peak_step > first_step and peak > 1.05 * lr0
    # A linear warm-up from zero logged every k steps shows lr0 = peak * step0 / peak_step.
    from_zero = ratio <= 0.1 or (
        rising and first_step > 0 and lr0 <= 1.5 * peak * first_step / peak_step
    )
    if from_zero:
        return Finding(
            name="warmup",
            direction="neutral",
            strength="info",
            message=f"LR warms up from ~0 ({lr0:.3g} at step {first_step:g}, "
            f"{ratio:.1%} of its peak {peak:.3g} at step {peak_step:g}): a fresh "
            "schedule, not a resumed one.",
            figures=figs,
        ), True
    if not rising and first_step > 1:
        return Finding(
            name="warmup",
            direction="neutral",
            strength="info",
            message=f"The LR is at its peak {peak:.3g} from the first logged step "
            f"({first_step:g}); a warm-up shorter than that would not show.",
            figures=figs,
        ), None
    if not rising:
        return Finding(
            name="warmup",
            direction="warm_start",
            strength="moderate",
            message=f"No warm-up: the LR starts at {lr0:.3g}, {ratio:.0%} of its peak "
            f"{peak:.3g}; typical of a resumed or continued run.",
            figures=figs,
        ), False
    return Finding(
        name="warmup",
        direction="neutral",
        strength="info",
        message=f"The LR rises from {lr0:.3g} ({ratio:.0%} of its peak {peak:.3g}), "
        "not from zero: a re-warmed or resumed schedule.",
        figures=figs,
    ), False


def fall_rate(log: ParsedLog, first: First, ln_v: float | None) -> Finding | None:
    """How fast the loss falls right after the first value."""
    s = log.series
    if log.window_kind == "epoch-mean":
        return None
    idx = np.flatnonzero(np.isfinite(s.loss))
    idx = idx[idx > first.index]
    if idx.size == 0:
        return None
    near = idx[s.step[idx] <= first.step + EARLY_STEPS]
    if near.size:
        j = int(near[np.argmin(s.loss[near])])
        steps = float(s.step[j] - first.step)
        drop = first.loss - float(s.loss[j])
        measured = f"{drop:.2f} nats in {steps:g} steps"
    else:
        j = int(idx[0])
        steps = float(s.step[j] - first.step)
        if steps <= 0:
            return None
        drop = (first.loss - float(s.loss[j])) * EARLY_STEPS / steps
        measured = f"{drop:.2f} nats per {EARLY_STEPS} steps (from {steps:g} steps apart)"
    figs = {"drop": round(drop, 4), "steps": steps}
    high = ln_v is not None and first.loss >= ln_v - 1.5
    if drop >= FALL_NATS and high:
        return Finding(
            name="fall_rate",
            direction="from_scratch",
            strength="moderate",
            message=f"Falls {measured} from near ln V, as a random init does "
            f"(> {FALL_NATS:g} nat in 10–20 steps).",
            figures=figs,
        )
    if drop >= FALL_NATS:
        return Finding(
            name="fall_rate",
            direction="neutral",
            strength="info",
            message=f"Falls {measured} from a low start: adaptation to new data "
            "(domain shift), not a random init.",
            figures=figs,
        )
    if not high and drop < 0.5:
        return Finding(
            name="fall_rate",
            direction="warm_start",
            strength="weak",
            message=f"Nearly flat start ({measured}), as in fine-tuning.",
            figures=figs,
        )
    return Finding(
        name="fall_rate",
        direction="neutral",
        strength="info",
        message=f"Falls {measured} after the first value.",
        figures=figs,
    )


def below_four(log: ParsedLog, ln_v: float | None) -> Finding | None:
    """With an LLM-size vocabulary, reaching < 4 nats within 200 steps rules out random init."""
    if ln_v is None or ln_v < LLM_LN_V or log.window_kind == "epoch-mean":
        return None
    s = log.series
    hit = np.flatnonzero(np.isfinite(s.loss) & (s.loss < 4.0))
    if hit.size == 0:
        return None
    step = float(s.step[hit[0]])
    figs = {"step_below_4": step}
    if step < BELOW4_STEPS:
        return Finding(
            name="below_4",
            direction="warm_start",
            strength="moderate",
            message=f"Loss is below 4 nats by step {step:g}; a random init needs "
            "thousands of steps to get there.",
            figures=figs,
        )
    return Finding(
        name="below_4",
        direction="neutral",
        strength="info",
        message=f"Loss first goes below 4 nats at step {step:g}.",
        figures=figs,
    )


def initial_eval(log: ParsedLog, first: First | None, ln_v: float | None) -> Finding | None:
    """An evaluation of the untrained weights (step 0/1) is an exact initial loss."""
    early = [(s, v) for s, v in log.eval_points if s <= 1 and math.isfinite(v)]
    if not early or ln_v is None:
        return None
    step, value = early[0]
    exact = First(-1, step, value, math.nan, 1, True)
    f = initial_loss(exact, ln_v, None)
    f.name = "initial_eval"
    f.message = f"Evaluation ({log.eval_metric or 'eval'}) " + f.message[0].lower() + f.message[1:]
    return f
