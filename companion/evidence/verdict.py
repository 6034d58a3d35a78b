"""From findings to a verdict that is never wrong: disagreement means `inconclusive`."""

from __future__ import annotations

from companion.evidence.schemas import STRENGTH_SCORE, Finding, Reason, Verdict


def _reason(f: Finding) -> Reason:
    """A finding quoted as a reason."""
    return Reason(text=f.message, figures=dict(f.figures))


def decide(findings: list[Finding], ln_v: float | None) -> tuple[Verdict, list[Reason]]:
    """Weigh the findings: one side at moderate+ with the other at most weak wins."""
    scratch = [f for f in findings if f.direction == "from_scratch"]
    warm = [f for f in findings if f.direction == "warm_start"]
    s = max((STRENGTH_SCORE[f.strength] for f in scratch), default=0)
    w = max((STRENGTH_SCORE[f.strength] for f in warm), default=0)
    key = lambda f: -STRENGTH_SCORE[f.strength]  # noqa: E731
    free = [f for f in warm if f.figures.get("vocab_free")]
    if ln_v is None and free and STRENGTH_SCORE[free[0].strength] >= 2 and s <= 1:
        # far below ln 256: a warm start whatever V is (the bound is in the message)
        return "warm_start", [_reason(f) for f in sorted(warm, key=key)] + [
            _reason(f) for f in scratch
        ]
    if ln_v is None:
        hints = [_reason(f) for f in sorted(scratch + warm, key=key)]
        return "inconclusive", [
            Reason(
                text="The vocabulary size V is unknown, so the first loss cannot be compared "
                "with ln V; pass --vocab-size N or --config config.json."
            ),
            *hints,
        ]
    if s >= 2 and w >= 2:
        sides = sorted(scratch, key=key)[:2] + sorted(warm, key=key)[:2]
        return "inconclusive", [
            Reason(
                text="The signals disagree (a vocabulary swap or domain shift over a trained "
                "body can start near ln V and then fall faster than random init, and a "
                "resumed log hides the start): not calling it."
            )
        ] + [_reason(f) for f in sides]
    if s >= 2 and w <= 1:
        return "from_scratch", [_reason(f) for f in sorted(scratch, key=key)] + [
            _reason(f) for f in warm
        ]
    if w >= 2 and s <= 1:
        return "warm_start", [_reason(f) for f in sorted(warm, key=key)] + [
            _reason(f) for f in scratch
        ]
    initial = [f for f in findings if f.name == "initial_loss"]
    return "inconclusive", [
        Reason(
            text="No decisive signal: the first value is too late, too averaged or too close "
            "to call."
        )
    ] + [_reason(f) for f in initial + scratch + warm]
