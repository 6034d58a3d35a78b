"""Several runs in one file: a restart appends a run whose step counter goes back to the start."""

from __future__ import annotations

import copy
import itertools

import numpy as np

from companion.evidence.series import LossSeries, ParsedLog

_COLS = ("step", "loss", "lr", "tokens", "samples")


def run_starts(log: ParsedLog) -> list[int]:
    """Indices where a run starts: 0, then every step reset back to the first step or below."""
    step = log.series.step
    ok = np.flatnonzero(np.isfinite(step))
    if ok.size < 2:
        return [0]
    starts = [0]
    first = float(step[ok[0]])
    for a, b in itertools.pairwise(ok):
        if step[b] < step[a] and step[b] <= max(first, 1.0):
            starts.append(int(b))
            first = float(step[b])
    return starts


def split_runs(log: ParsedLog) -> list[ParsedLog]:
    """The log cut into its runs (one element when the counter never goes back)."""
    starts = run_starts(log)
    if len(starts) == 1:
        return [log]
    bounds = [*starts, len(log.series)]
    out = []
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        part = copy.copy(log)
        s = log.series
        part.series = LossSeries(*(getattr(s, c)[a:b] for c in _COLS))
        part.eval_points = log.eval_points if k == 0 else []
        part.notes = list(log.notes)
        out.append(part)
    return out
