"""One rule table for V unknown (`initial.UNKNOWN_V_RULES`): every rule is reachable, so none
is shadowed, and the engine uses that table alone."""

from __future__ import annotations

import math

import pytest

from companion.evidence.initial import UNKNOWN_V_RULES, Case, First, initial_loss


def first(step: float, loss: float, window: int = 1) -> First:
    """A first value at `step` (exact when step ≤ 1 and not averaged)."""
    return First(0, step, loss, math.nan, window, step <= 1 and window == 1)


CASES = [
    ("_unknown_v_late", first(500, 2.1)),
    ("_unknown_v_far_below", first(1, 1.4)),
    ("_unknown_v_early_floor", first(10, 1.8)),
    ("_unknown_v_below_bound", first(1, 4.17)),
    ("_unknown_v_in_range", first(1, 10.8)),
    ("_unknown_v_high", first(1, 17.0)),
    ("_unknown_v_low", first(10, 3.2)),
    ("_unknown_v", first(10, 4.6)),
]


@pytest.mark.parametrize(("name", "value"), CASES)
def test_each_unknown_v_rule_answers_its_own_case(name: str, value: First) -> None:
    case = Case(value, math.nan, None, "here")
    answered = next(rule for rule in UNKNOWN_V_RULES if rule(case) is not None)
    assert answered.__name__ == name


def test_every_unknown_v_rule_is_reached() -> None:
    assert sorted(n for n, _ in CASES) == sorted(r.__name__ for r in UNKNOWN_V_RULES)


def test_driver_reads_the_table_with_the_bound_stated() -> None:
    f = initial_loss(first(1, 1.4), None, None)
    assert f.direction == "warm_start" and f.strength == "strong"
    assert f.figures["bound"] == round(math.log(256), 4) and "2^8–2^20" in f.message
    late = initial_loss(first(500, 2.1), None, None)
    assert late.direction == "neutral"
