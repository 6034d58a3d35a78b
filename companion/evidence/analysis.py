"""Findings about a loss series: initial loss vs ln V, averaging, fall rate and warm-up.

Thresholds are facts about random initialisation: at step 0 a random model's
cross-entropy is ln V (higher by about sigma^2/2 with larger init std; 16-22 nats with some
tied-embedding inits); a from-scratch run falls by more than 1 nat in 10-20 steps and needs
thousands of steps to go below 4 nats (LLM vocabularies); fine-tuning starts near 1-3.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from companion.evidence.schemas import Finding
from companion.evidence.series import ParsedLog

AT_LN_V = 0.15  # a first loss within this of ln V (or above) is a random-init signature
TOO_HIGH = 12.0  # nats above ln V: not a per-token cross-entropy in nats
EARLY_STEPS = 20  # "the very first steps": what an early fall can cover
FALL_NATS = 1.0  # from scratch falls by more than this within EARLY_STEPS
BELOW4_STEPS = 200  # reaching < 4 nats this early is beyond a random init (V >= 8k)
LLM_LN_V = 9.0  # the "< 4 nats" rule applies to vocabularies of 8k tokens and more


@dataclass
class First:
    """The first usable value and what it averages."""

    index: int
    step: float
    loss: float
    lr: float
    window: int | None
    exact: bool  # the loss of the initial weights (step 0/1, not averaged)
    start_estimate: float | None = None  # window mean extrapolated back to the window's start


def first_value(log: ParsedLog) -> First | None:
    """The first finite loss, its averaging window and whether it is exact."""
    s = log.series
    finite = np.flatnonzero(np.isfinite(s.loss))
    if finite.size == 0:
        return None
    i = int(finite[0])
    step = float(s.step[i])
    window: int | None
    if log.window_kind in ("point", "eval"):
        window = 1
    elif log.window_kind == "epoch-mean":
        window = None
    elif log.window is not None:
        window = log.window
    else:
        steps = s.step[finite[:11]]
        diffs = np.diff(steps)
        diffs = diffs[diffs > 0]
        window = int(np.median(diffs)) if diffs.size else None
        if window is not None:
            log.window_source = "inferred from the step spacing"
    if window is not None and step >= 1:
        window = max(1, min(window, int(step)))
    exact = step <= 1 and window == 1
    first = First(i, step, float(s.loss[i]), float(s.lr[i]), window, exact)
    if window is not None and window > 1 and step - window + 1 <= 1 and finite.size > 1:
        j = int(finite[1])
        span = float(s.step[j]) - step
        slope = (first.loss - float(s.loss[j])) / span if span > 0 else 0.0
        if slope > 0:  # the mean sits mid-window; a falling curve started higher
            first.start_estimate = first.loss + slope * (window - 1) / 2
    return first


def initial_loss(first: First, ln_v: float | None, lr_near_zero: bool | None) -> Finding:
    """The decisive test: where the first loss sits relative to ln V."""
    figs = {
        "first_step": first.step,
        "first_loss": round(first.loss, 4),
        "window": first.window,
        "ln_vocab": None if ln_v is None else round(ln_v, 4),
    }
    where = _where(first)
    if ln_v is None:
        if first.loss >= LLM_LN_V and first.step <= EARLY_STEPS:
            return Finding(
                name="initial_loss",
                direction="from_scratch",
                strength="weak",
                message=f"First loss {first.loss:.3f} {where} is ≥ 9 nats, typical of a "
                "random init for vocabularies ≥ 8k, but V is unknown.",
                figures=figs,
            )
        if first.loss <= 3.5 and first.step <= EARLY_STEPS:
            return Finding(
                name="initial_loss",
                direction="warm_start",
                strength="weak",
                message=f"First loss {first.loss:.3f} {where} is in the 1–3.5 range "
                "where fine-tunes start, but V is unknown.",
                figures=figs,
            )
        return Finding(
            name="initial_loss",
            direction="neutral",
            strength="info",
            message=f"First loss {first.loss:.3f} {where}; without V the initial-loss "
            "test cannot run.",
            figures=figs,
        )
    gap = ln_v - first.loss
    figs["gap"] = round(gap, 4)
    if first.loss <= 0 or first.loss > ln_v + TOO_HIGH:
        return Finding(
            name="initial_loss",
            direction="neutral",
            strength="info",
            message=f"First loss {first.loss:.3f} {where} is not a plausible per-token "
            f"cross-entropy in nats for ln V = {ln_v:.3f} (log2? summed?).",
            figures=figs,
        )
    if gap <= AT_LN_V:
        above = ""
        if first.loss > ln_v + AT_LN_V:
            above = (
                f" It is {-gap:.2f} above ln V, as a random init with larger weights gives "
                "(ln V + σ²/2; tied embeddings can start at 16–22)."
            )
        lr_txt = " with the learning rate near zero" if lr_near_zero else ""
        if first.window is None:  # a mean at ln V still means the start was at or above it
            strength = "moderate"
        elif first.step <= EARLY_STEPS or lr_near_zero:
            strength = "strong"
        else:
            strength = "moderate" if first.step <= 1000 else "weak"
        return Finding(
            name="initial_loss",
            direction="from_scratch",
            strength=strength,
            message=f"First loss {first.loss:.3f} {where}{lr_txt} is at ln V = "
            f"{ln_v:.3f} (within {AT_LN_V}): the signature of random init.{above}",
            figures=figs,
        )
    if first.window is None:
        return Finding(
            name="initial_loss",
            direction="neutral",
            strength="info",
            message=f"First loss {first.loss:.3f} {where} is {gap:.2f} below ln V = "
            f"{ln_v:.3f}, but a mean over an unknown number of steps cannot be tested "
            "against the initial loss.",
            figures=figs,
        )
    if not first.exact and first.start_estimate is not None:
        est = first.start_estimate
        figs["start_estimate"] = round(est, 4)
        if ln_v - est <= AT_LN_V or ln_v - est < 1.5:
            scratch = ln_v - est <= AT_LN_V
            return Finding(
                name="initial_loss",
                direction="from_scratch" if scratch else "neutral",
                strength="moderate" if scratch else "info",
                message=f"First loss {first.loss:.3f} {where} is {gap:.2f} below ln V = "
                f"{ln_v:.3f}, but the fall to the next value, extrapolated back to the start "
                f"of the window, gives ≈ {est:.3f}"
                + (": at ln V, as from random init." if scratch else ", within reach of ln V."),
                figures=figs,
            )
    if first.exact:
        strength = "strong" if gap >= 1.0 else "moderate"
        return Finding(
            name="initial_loss",
            direction="warm_start",
            strength=strength,
            message=f"First loss {first.loss:.3f} {where} is {gap:.2f} nats below ln V = "
            f"{ln_v:.3f}; random weights give ≈ ln V at the first step.",
            figures=figs,
        )
    if first.step <= EARLY_STEPS:
        if gap >= 3.0:
            strength = "strong"
        elif gap >= 1.5:
            strength = "moderate"
        else:
            return Finding(
                name="initial_loss",
                direction="neutral",
                strength="info",
                message=f"First loss {first.loss:.3f} {where} is {gap:.2f} below ln V = "
                f"{ln_v:.3f}, within what an early fall can explain.",
                figures=figs,
            )
        return Finding(
            name="initial_loss",
            direction="warm_start",
            strength=strength,
            message=f"First loss {first.loss:.3f} {where} is {gap:.2f} nats below ln V = "
            f"{ln_v:.3f}; a random init cannot fall that far in {first.step:g} steps.",
            figures=figs,
        )
    if first.step <= 1000 and ln_v >= LLM_LN_V and first.loss < 4.0:
        return Finding(
            name="initial_loss",
            direction="warm_start",
            strength="moderate",
            message=f"First loss {first.loss:.3f} {where} is below 4 nats; from scratch "
            f"(ln V = {ln_v:.3f}) that takes thousands of steps.",
            figures=figs,
        )
    return Finding(
        name="initial_loss",
        direction="neutral",
        strength="info",
        message=f"First loss {first.loss:.3f} {where} comes too late to test against "
        f"ln V = {ln_v:.3f}.",
        figures=figs,
    )


def _where(first: First) -> str:
    """'at step 1' / 'at step 10 (mean of steps 1–10)'."""
    if first.window is not None and first.window > 1:
        lo = first.step - first.window + 1
        return f"at step {first.step:g} (mean of steps {lo:g}–{first.step:g})"
    if first.window is None:
        return f"at epoch/step {first.step:g} (a mean over an unknown number of steps)"
    return f"at step {first.step:g}"


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
