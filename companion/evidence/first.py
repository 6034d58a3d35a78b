"""The first usable loss value of a log: its step, what window it averages, whether it is the
loss of the initial weights, and the start a falling window mean extrapolates back to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from companion.evidence.series import ParsedLog


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
