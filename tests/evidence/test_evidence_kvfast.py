"""The template fast path of the generic grammar gives exactly what the line-by-line path
gives, on every published text shape repeated, with odd lines mixed in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.log_shapes import SHAPES
from companion.evidence import kvlog
from companion.evidence.detect import read_log
from companion.evidence.kvfast import template

TEXT = [
    s for s in SHAPES if not s[1].endswith((".json", ".jsonl", ".csv")) and "Composer" not in s[0]
]


def both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    """The parse with the fast path, then with it turned off."""
    fast = read_log(path)
    with monkeypatch.context() as m:
        m.setattr(kvlog, "MAX_TEMPLATES", 0)
        slow = read_log(path)
    return fast, slow


@pytest.mark.parametrize(("name", "filename", "text", "expected"), TEXT, ids=[s[0] for s in TEXT])
def test_fast_path_equals_the_line_by_line_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    filename: str,
    text: str,
    expected: float,
) -> None:
    body = [ln for ln in text.splitlines(keepends=True) if ln.strip()]
    noise = "WARNING: something unrelated 12 happened\n"
    path = tmp_path / filename
    path.write_text("".join(body) * 40 + noise + "".join(body) * 40)
    fast, slow = both(path, monkeypatch)
    for col in ("step", "loss", "lr", "tokens", "samples"):
        np.testing.assert_array_equal(getattr(fast.series, col), getattr(slow.series, col))
    for attr in (
        "used",
        "skipped",
        "used_lines",
        "skipped_lines",
        "first_line",
        "grad_norms",
        "eval_points",
        "nonfinite_lines",
        "records",
        "format",
        "metric",
    ):
        assert getattr(fast, attr) == getattr(slow, attr), attr


def test_a_template_holds_the_fields_and_matches_padding() -> None:
    tpl = template(b"step    10 | loss 9.8700 | lr 3.0e-04 | grad_norm 1.2")
    assert tpl is not None and set(tpl.groups) == {"step", "loss", "lr", "grad_norm"}
    m = tpl.pattern.match(b"step 12345 | loss nan | lr 1e-5 | grad_norm 0.9")
    assert m is not None and m.group(tpl.groups["step"]) == b"12345"
    assert template(b"ppl: 1234.5") is None  # evaluations stay on the line-by-line path


def test_nonfinite_lines_found_in_bulk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [f"step {s} | loss {9.0 - s / 100:.4f}\n" for s in range(1, 200)]
    lines[150] = "step 151 | loss nan\n"
    path = tmp_path / "train.log"
    path.write_text("".join(lines))
    fast, slow = both(path, monkeypatch)
    assert fast.nonfinite_lines == slow.nonfinite_lines == [151]
