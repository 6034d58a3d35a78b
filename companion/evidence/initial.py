"""The first usable loss value and the initial-loss test: where it sits relative to ln V.

The test is a table of named rules (`UNKNOWN_V_RULES`, `KNOWN_V_RULES`), tried in order; the
first rule that answers gives the finding. Thresholds are facts about random initialisation
(see `companion.evidence.analysis`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from companion.evidence.first import First as First  # re-exported: the rules read it
from companion.evidence.first import first_value as first_value
from companion.evidence.schemas import Direction, Figure, Finding, Strength

AT_LN_V = 0.15  # a first loss within this of ln V (or above) is a random-init signature
TOO_HIGH = 12.0  # nats above ln V: not a per-token cross-entropy in nats
EARLY_STEPS = 20  # "the very first steps": what an early fall can cover
FALL_NATS = 1.0  # from scratch falls by more than this within EARLY_STEPS
BELOW4_STEPS = 200  # reaching < 4 nats this early is beyond a random init (V >= 8k)
LLM_LN_V = 9.0  # the "< 4 nats" rule applies to vocabularies of 8k tokens and more
# V unknown: plausible language-model vocabularies span 2^8..2^20 tokens (ln V 5.545..13.86);
# character-level vocabularies of ~65 symbols (ln 65 = 4.17) are the one common exception.
LN_MIN_V = math.log(2**8)
LN_MAX_V = math.log(2**20)
LN_CHAR_V = math.log(65)
FAR_BELOW = 3.0  # below ln 65 - 1: no text vocabulary's random init starts here
EARLY_FLOOR = 2.0  # no random init reaches this within EARLY_STEPS, whatever V is


@dataclass
class Case:
    """What every initial-loss rule reads: the first value, ln V and the figures so far."""

    first: First
    ln_v: float  # NaN when the vocabulary is unknown (only the unknown-V rules run then)
    lr_near_zero: bool | None
    where: str
    figures: dict[str, Figure] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Nats between ln V and the first loss (positive: below ln V)."""
        return self.ln_v - self.first.loss

    def finding(self, direction: Direction, strength: Strength, message: str) -> Finding:
        """An initial_loss finding with the figures gathered so far."""
        return Finding(
            name="initial_loss",
            direction=direction,
            strength=strength,
            message=message,
            figures=self.figures,
        )


Rule = Callable[[Case], Finding | None]


def vocab_range(loss: float) -> tuple[int, int]:
    """The vocabulary sizes whose ln V lies within AT_LN_V of this first loss."""
    return int(math.exp(loss - AT_LN_V)), int(math.exp(loss + AT_LN_V))


def _bound(c: Case) -> str:
    """Where the first value sits, and the vocabulary-free bound it is judged against."""
    c.figures["bound"], c.figures["vocab_free"] = round(LN_MIN_V, 4), 1
    return f"{c.where}" + ("" if c.first.exact else " (not the initial weights)")


BOUND = f"ln 256 = {LN_MIN_V:.3f}, the lowest random-init loss of any vocabulary of 2^8–2^20"


def _unknown_v_late(c: Case) -> Finding | None:
    """V unknown and the first value past the first steps: nothing to compare it with."""
    if c.first.step <= EARLY_STEPS and c.first.loss > 0:
        return None
    return _unknown_v(c)


def _unknown_v_far_below(c: Case) -> Finding | None:
    """The loss of the initial weights below ln 65 - 1: no text vocabulary starts there."""
    f = c.first
    if not (f.exact and f.loss < FAR_BELOW):
        return None
    return c.finding(
        "warm_start",
        "strong",
        f"First loss {f.loss:.3f} {_bound(c)} is far below {BOUND} (and below even a "
        f"character-level vocabulary's ln 65 = {LN_CHAR_V:.2f}): a warm start whatever V is.",
    )


def _unknown_v_early_floor(c: Case) -> Finding | None:
    """Below EARLY_FLOOR within the first steps: no random init falls that far that fast."""
    f = c.first
    if f.exact or f.loss >= EARLY_FLOOR:
        return None
    return c.finding(
        "warm_start",
        "moderate",
        f"First loss {f.loss:.3f} {_bound(c)} is below {EARLY_FLOOR:g} nats within "
        f"{EARLY_STEPS} steps; bound: {BOUND}, and no random init falls that far that fast: "
        "a warm start whatever V is.",
    )


def _unknown_v_below_bound(c: Case) -> Finding | None:
    """The loss of the initial weights below ln 256: warm, unless V is character-level."""
    f = c.first
    if not (f.exact and f.loss < LN_MIN_V - 0.5):
        return None
    return c.finding(
        "warm_start",
        "weak",
        f"First loss {f.loss:.3f} {_bound(c)} is below {BOUND}: a warm start for any "
        "vocabulary of 256 or more; only a character-level vocabulary (V < 256) starts this "
        "low, so give --vocab-size to settle it.",
    )


def _unknown_v_in_range(c: Case) -> Finding | None:
    """A first loss at ln V for some plausible V: name the vocabularies it fits."""
    f = c.first
    if not LN_MIN_V - AT_LN_V <= f.loss <= LN_MAX_V + AT_LN_V:
        return None
    lo, hi = vocab_range(f.loss)
    where = _bound(c)
    c.figures["vocab_lo"], c.figures["vocab_hi"] = lo, hi
    return c.finding(
        "from_scratch",
        "weak",
        f"First loss {f.loss:.3f} {where} is consistent with random init for vocabularies "
        f"of ~{lo:,}–{hi:,} tokens (ln V within {AT_LN_V} of it); V is unknown, so give "
        "--vocab-size or a config.json to decide.",
    )


def _unknown_v_high(c: Case) -> Finding | None:
    """Above ln 2^20: a random init with larger weights (ln V + σ²/2), whatever V is."""
    f = c.first
    if f.loss <= LN_MAX_V + AT_LN_V:
        return None
    return c.finding(
        "from_scratch",
        "weak",
        f"First loss {f.loss:.3f} {c.where} is above ln 2^20 = {LN_MAX_V:.2f}, as a random "
        "init with larger weights gives (ln V + σ²/2), but V is unknown.",
    )


def _unknown_v_low(c: Case) -> Finding | None:
    """A mean or later value of 2–3.5 nats in the first steps: where fine-tunes start."""
    f = c.first
    if f.loss > 3.5:
        return None
    return c.finding(
        "warm_start",
        "weak",
        f"First loss {f.loss:.3f} {_bound(c)} is in the 2–3.5 range where fine-tunes start, "
        f"below {BOUND}, but a character-level run can fall there in {EARLY_STEPS} steps and "
        "V is unknown.",
    )


def _unknown_v(c: Case) -> Finding:
    """V unknown, first loss in between: the test cannot run."""
    return c.finding(
        "neutral",
        "info",
        f"First loss {c.first.loss:.3f} {c.where}; without V the initial-loss test cannot run.",
    )


def _implausible(c: Case) -> Finding | None:
    """A first loss at or below zero, or far above ln V, is not a cross-entropy in nats."""
    f = c.first
    if f.loss <= 0 or f.loss > c.ln_v + TOO_HIGH:
        return c.finding(
            "neutral",
            "info",
            f"First loss {f.loss:.3f} {c.where} is not a plausible per-token "
            f"cross-entropy in nats for ln V = {c.ln_v:.3f} (log2? summed?).",
        )
    return None


def _at_ln_v_strength(c: Case) -> Strength:
    """How decisive a first loss at ln V is, given its step, window and learning rate."""
    if c.first.window is None:  # a mean at ln V still means the start was at or above it
        return "moderate"
    if c.first.step <= EARLY_STEPS or c.lr_near_zero:
        return "strong"
    return "moderate" if c.first.step <= 1000 else "weak"


def _at_ln_v(c: Case) -> Finding | None:
    """A first loss within AT_LN_V of ln V (or above it) is the signature of random init."""
    f, gap = c.first, c.gap
    if gap > AT_LN_V:
        return None
    above = ""
    if f.loss > c.ln_v + AT_LN_V:
        above = (
            f" It is {-gap:.2f} above ln V, as a random init with larger weights gives "
            "(ln V + σ²/2; tied embeddings can start at 16–22)."
        )
    lr_txt = " with the learning rate near zero" if c.lr_near_zero else ""
    return c.finding(
        "from_scratch",
        _at_ln_v_strength(c),
        f"First loss {f.loss:.3f} {c.where}{lr_txt} is at ln V = "
        f"{c.ln_v:.3f} (within {AT_LN_V}): the signature of random init.{above}",
    )


def _unknown_window(c: Case) -> Finding | None:
    """A mean over an unknown number of steps below ln V cannot be tested."""
    if c.first.window is not None:
        return None
    return c.finding(
        "neutral",
        "info",
        f"First loss {c.first.loss:.3f} {c.where} is {c.gap:.2f} below ln V = "
        f"{c.ln_v:.3f}, but a mean over an unknown number of steps cannot be tested "
        "against the initial loss.",
    )


def _extrapolated_start(c: Case) -> Finding | None:
    """A window mean whose start, extrapolated back, reaches (or nears) ln V."""
    f = c.first
    if f.exact or f.start_estimate is None:
        return None
    est = f.start_estimate
    c.figures["start_estimate"] = round(est, 4)  # kept by the later findings too
    if not (c.ln_v - est <= AT_LN_V or c.ln_v - est < 1.5):
        return None
    scratch = c.ln_v - est <= AT_LN_V
    return c.finding(
        "from_scratch" if scratch else "neutral",
        "moderate" if scratch else "info",
        f"First loss {f.loss:.3f} {c.where} is {c.gap:.2f} below ln V = "
        f"{c.ln_v:.3f}, but the fall to the next value, extrapolated back to the start "
        f"of the window, gives ≈ {est:.3f}"
        + (": at ln V, as from random init." if scratch else ", within reach of ln V."),
    )


def _exact_below(c: Case) -> Finding | None:
    """The loss of the initial weights below ln V: a warm start."""
    if not c.first.exact:
        return None
    return c.finding(
        "warm_start",
        "strong" if c.gap >= 1.0 else "moderate",
        f"First loss {c.first.loss:.3f} {c.where} is {c.gap:.2f} nats below ln V = "
        f"{c.ln_v:.3f}; random weights give ≈ ln V at the first step.",
    )


def _early_fall_explains(c: Case) -> Finding | None:
    """Within the first steps, a gap under 1.5 nats is what an early fall can explain."""
    if c.first.step > EARLY_STEPS or c.gap >= 1.5:
        return None
    return c.finding(
        "neutral",
        "info",
        f"First loss {c.first.loss:.3f} {c.where} is {c.gap:.2f} below ln V = "
        f"{c.ln_v:.3f}, within what an early fall can explain.",
    )


def _early_far_below(c: Case) -> Finding | None:
    """Within the first steps, 1.5 nats or more below ln V is too far to fall from scratch."""
    if c.first.step > EARLY_STEPS:
        return None
    return c.finding(
        "warm_start",
        "strong" if c.gap >= 3.0 else "moderate",
        f"First loss {c.first.loss:.3f} {c.where} is {c.gap:.2f} nats below ln V = "
        f"{c.ln_v:.3f}; a random init cannot fall that far in {c.first.step:g} steps.",
    )


def _below_four_soon(c: Case) -> Finding | None:
    """An LLM vocabulary and a first loss under 4 nats within 1000 steps: a warm start."""
    f = c.first
    if f.step > 1000 or c.ln_v < LLM_LN_V or f.loss >= 4.0:
        return None
    return c.finding(
        "warm_start",
        "moderate",
        f"First loss {f.loss:.3f} {c.where} is below 4 nats; from scratch "
        f"(ln V = {c.ln_v:.3f}) that takes thousands of steps.",
    )


def _too_late(c: Case) -> Finding:
    """A first value too late in the run to test against ln V."""
    return c.finding(
        "neutral",
        "info",
        f"First loss {c.first.loss:.3f} {c.where} comes too late to test against "
        f"ln V = {c.ln_v:.3f}.",
    )


# One table for V unknown: the first rule that answers gives the finding.
UNKNOWN_V_RULES: tuple[Rule, ...] = (
    _unknown_v_late,
    _unknown_v_far_below,
    _unknown_v_early_floor,
    _unknown_v_below_bound,
    _unknown_v_in_range,
    _unknown_v_high,
    _unknown_v_low,
    _unknown_v,
)
KNOWN_V_RULES: tuple[Rule, ...] = (
    _implausible,
    _at_ln_v,
    _unknown_window,
    _extrapolated_start,
    _exact_below,
    _early_fall_explains,
    _early_far_below,
    _below_four_soon,
    _too_late,
)


def initial_loss(first: First, ln_v: float | None, lr_near_zero: bool | None) -> Finding:
    """The decisive test: where the first loss sits relative to ln V."""
    case = Case(first, math.nan if ln_v is None else ln_v, lr_near_zero, _where(first))
    case.figures = {
        "first_step": first.step,
        "first_loss": round(first.loss, 4),
        "window": first.window,
        "ln_vocab": None if ln_v is None else round(ln_v, 4),
    }
    if ln_v is not None:
        case.figures["gap"] = round(case.gap, 4)
    rules = UNKNOWN_V_RULES if ln_v is None else KNOWN_V_RULES
    return next(f for f in (rule(case) for rule in rules) if f is not None)


def _where(first: First) -> str:
    """'at step 1' / 'at step 10 (mean of steps 1–10)'."""
    if first.window is not None and first.window > 1:
        lo = first.step - first.window + 1
        return f"at step {first.step:g} (mean of steps {lo:g}–{first.step:g})"
    if first.window is None:
        return f"at epoch/step {first.step:g} (a mean over an unknown number of steps)"
    return f"at step {first.step:g}"
