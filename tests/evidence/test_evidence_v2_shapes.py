"""Parse coverage over the published log shapes in bench/log_shapes.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.log_shapes import SHAPES
from companion.errors import InputError
from companion.evidence.detect import read_log

NOT_READ = {"Composer console logger"}  # keys like `Train loss/train/total`: not claimed


@pytest.mark.parametrize(
    ("name", "filename", "text", "expected"), SHAPES, ids=[s[0] for s in SHAPES]
)
def test_published_shape(
    tmp_path: Path, name: str, filename: str, text: str, expected: float
) -> None:
    p = tmp_path / filename
    p.write_text(text, encoding="utf-8")
    if name in NOT_READ:
        with pytest.raises(InputError):
            read_log(p)
        return
    log = read_log(p)
    first = next(float(v) for v in log.series.loss if not math.isnan(v))
    assert first == pytest.approx(expected, abs=1e-3)


def test_coverage_is_at_least_twenty_shapes() -> None:
    assert len(SHAPES) >= 20 and len(SHAPES) - len(NOT_READ) >= 20
