"""The parsed form of a training log: a loss series plus what the parser saw on the way."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
# How one logged value relates to the steps before it.
WindowKind = Literal["point", "mean", "eval", "epoch-mean"]
_FLUSH = 65536
_COLUMNS = ("step", "loss", "lr", "tokens", "samples")


@dataclass
class LossSeries:
    """Parallel arrays, one entry per logged loss value, in log order (NaN = not logged)."""

    step: Floats
    loss: Floats
    lr: Floats
    tokens: Floats
    samples: Floats

    def __len__(self) -> int:
        """Number of logged values."""
        return int(self.step.shape[0])

    def concat(self, other: LossSeries) -> LossSeries:
        """This series followed by another (resumed segments given in order)."""
        return LossSeries(
            *(np.concatenate([getattr(self, c), getattr(other, c)]) for c in _COLUMNS)
        )


class SeriesBuilder:
    """Accumulates values in compact float64 blocks (8 bytes per value, never Python floats)."""

    def __init__(self) -> None:
        self._rows: dict[str, list[float]] = {c: [] for c in _COLUMNS}
        self._blocks: dict[str, list[Floats]] = {c: [] for c in _COLUMNS}
        self.count = 0

    def add(
        self,
        step: float,
        loss: float,
        lr: float = math.nan,
        tokens: float = math.nan,
        samples: float = math.nan,
    ) -> None:
        """Append one value."""
        rows = self._rows
        rows["step"].append(step)
        rows["loss"].append(loss)
        rows["lr"].append(lr)
        rows["tokens"].append(tokens)
        rows["samples"].append(samples)
        self.count += 1
        if len(rows["step"]) >= _FLUSH:
            self._flush()

    def add_block(self, **columns: Floats) -> None:
        """Append many values at once; missing columns are NaN."""
        self._flush()
        n = int(columns["step"].shape[0])
        for c in _COLUMNS:
            col = columns.get(c)
            self._blocks[c].append(np.full(n, np.nan) if col is None else col.astype(np.float64))
        self.count += n

    def _flush(self) -> None:
        """Move pending rows into a numpy block."""
        if not self._rows["step"]:
            return
        for c in _COLUMNS:
            self._blocks[c].append(np.asarray(self._rows[c], dtype=np.float64))
            self._rows[c] = []

    def build(self) -> LossSeries:
        """The finished series."""
        self._flush()
        cols = [
            np.concatenate(self._blocks[c]) if self._blocks[c] else np.empty(0) for c in _COLUMNS
        ]
        return LossSeries(*cols)


def empty_series() -> LossSeries:
    """A series with no values."""
    return SeriesBuilder().build()


@dataclass
class ParsedLog:
    """One parsed log: the series, its format, averaging semantics and parse statistics."""

    format: str
    files: list[Path]
    series: LossSeries
    metric: str = "loss"
    window_kind: WindowKind = "point"
    window: int | None = None  # steps averaged into each value, when the format says so
    window_source: str = ""
    records: int = 0  # lines or records read
    unparseable: int = 0
    unparseable_lines: list[int] = field(default_factory=list)  # 1-based, first few
    nonfinite_lines: list[int] = field(default_factory=list)
    skipped_iterations: int = 0
    nan_iterations: int = 0
    first_line: int | None = None  # 1-based line of the first loss record (text formats)
    eval_points: list[tuple[float, float]] = field(default_factory=list)  # (step, loss)
    eval_metric: str = ""
    vocab: int | None = None
    vocab_source: str = ""
    seq_length: int | None = None
    tokens_per_step: int | None = None
    notes: list[str] = field(default_factory=list)
    used: int = 0  # lines that gave a value (generic grammar)
    used_lines: list[int] = field(default_factory=list)  # 1-based, first few
    skipped: int = 0  # record-like lines that gave no loss (other metrics, broken values)
    skipped_lines: list[int] = field(default_factory=list)
    grad_norms: list[tuple[float, float]] = field(default_factory=list)  # (step, norm), first few

    def note_unparseable(self, line: int | None, count: int = 1) -> None:
        """Count unparseable lines, remembering the first few line numbers."""
        self.unparseable += count
        if line is not None and len(self.unparseable_lines) < 20:
            self.unparseable_lines.append(line)


MAX_LINE_REFS = 20
