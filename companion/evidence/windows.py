"""Interval means and sparse exports: can this first value come from a from-scratch run, or
from a fine-tune?

Model of a from-scratch start (facts, conservative): the loss starts at ln V and its excess
over a floor decays no faster than exp(-t / TAU_MIN) steps; within SCRATCH_HORIZON steps the
floor is at least FLOOR_FRAC × ln V. Model of a fine-tune with a trained head: it starts at
most FT_START_MAX nats (LLM vocabularies, ln V ≥ 9: fine-tunes start at 1–3.5) and its
window means never exceed that start; for smaller vocabularies no such bound is claimed.
"""

from __future__ import annotations

import math

import numpy as np

from companion.evidence.initial import LLM_LN_V, First
from companion.evidence.schemas import Finding, Strength

TAU_MIN = 10.0
FLOOR_FRAC = 0.25
SCRATCH_HORIZON = 1000
FT_START_MAX = 5.0


def scratch_min(ln_v: float, lo: float, hi: float) -> float:
    """The lowest mean a from-scratch run can show over steps lo..hi (1-based)."""
    t = np.arange(max(1.0, lo), max(1.0, hi) + 1.0)
    floor = FLOOR_FRAC * ln_v
    return float(np.mean(floor + (ln_v - floor) * np.exp(-(t - 1.0) / TAU_MIN)))


def finetune_max(ln_v: float) -> float:
    """The highest value a fine-tune's (trained-head) window mean can show (inf: no bound)."""
    return FT_START_MAX if ln_v >= LLM_LN_V else math.inf


def window_mean(first: First, ln_v: float | None) -> Finding | None:
    """Which start the first (averaged or late) value excludes, if any."""
    if ln_v is None or first.exact:
        return None
    hi = first.step
    lo = hi - first.window + 1 if first.window is not None else None
    ft = finetune_max(ln_v)
    figs: dict[str, float | int | str | None] = {"window_mean": round(first.loss, 4)}
    figs["finetune_max"] = round(ft, 4) if math.isfinite(ft) else None
    span = f"steps {lo:g}–{hi:g}" if lo is not None else f"an unknown window ending {hi:g}"
    low = None
    if lo is not None and hi <= SCRATCH_HORIZON:
        low = scratch_min(ln_v, lo, hi)
        figs["scratch_min"] = round(low, 4)
    if low is not None and first.loss < low and first.loss <= ft:
        strength: Strength = "strong" if first.loss < low - 1.0 else "moderate"
        return Finding(
            name="window_mean",
            direction="warm_start",
            strength=strength,
            message=f"The value {first.loss:.3f} over {span} is below {low:.3f}, the lowest a "
            f"from-scratch run (start ln V = {ln_v:.3f}, fastest realistic fall) can average "
            "there: excludes a random init.",
            figures=figs,
        )
    if first.loss > ft and (low is None or first.loss >= low):
        return Finding(
            name="window_mean",
            direction="from_scratch",
            strength="moderate",
            message=f"The value {first.loss:.3f} over {span} is above {ft:.3f}, the highest a "
            "fine-tune with a trained head starts at: excludes that fine-tune (a fresh head "
            "on a trained body is not excluded).",
            figures=figs,
        )
    return Finding(
        name="window_mean",
        direction="neutral",
        strength="info",
        message=f"The value {first.loss:.3f} over {span} fits both a from-scratch run "
        + (f"(≥ {low:.3f}) " if low is not None else "")
        + ("and a fine-tune" + (f" (≤ {ft:.3f})." if math.isfinite(ft) else ".")),
        figures=figs,
    )
