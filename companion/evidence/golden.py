"""Megatron-LM functional-test golden values: `{"lm loss": {"start_step", "step_interval",
"values": {"1": 10.8, ...}}, "mem-allocated-bytes": {...}}` (older files hold a values list)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from companion.errors import InputError
from companion.evidence.series import ParsedLog, SeriesBuilder

MAX_GOLDEN_BYTES = 256 << 20
LOSS_KEYS = ("lm loss", "lm-loss", "loss")
HINT = "pass a Megatron golden-values JSON with an 'lm loss' entry holding 'values'."


def is_golden(head: bytes) -> bool:
    """Whether a JSON head looks like a golden-values file."""
    body = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return body.startswith(b"{") and b'"values"' in head and b'"lm loss"' in head


def _points(entry: dict[str, Any]) -> list[tuple[float, float]]:
    """(step, value) pairs of one metric entry, values as a dict or a list."""
    values = entry.get("values")
    start = entry.get("start_step", 0)
    interval = entry.get("step_interval", 1)
    if not isinstance(start, int) or not isinstance(interval, int) or interval < 1:
        raise InputError("golden values: start_step/step_interval are not integers.", hint=HINT)
    if isinstance(values, dict):
        out = []
        for k, v in values.items():
            try:
                out.append((float(k), float(v) if v is not None else float("nan")))
            except (TypeError, ValueError):
                out.append((float("nan"), float("nan")))
        return sorted(out, key=lambda p: p[0])
    if isinstance(values, list):
        return [(float(start + i * interval), _num(v)) for i, v in enumerate(values)]
    raise InputError("golden values: 'values' is neither a dict nor a list.", hint=HINT)


def _num(v: object) -> float:
    """A JSON value as float (NaN when not a number)."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float("nan")


def parse_golden(path: Path) -> ParsedLog:
    """Read the 'lm loss' curve of a golden-values file."""
    if path.stat().st_size > MAX_GOLDEN_BYTES:
        raise InputError(f"{path} is too large for a golden-values file.", hint=HINT)
    try:
        data = json.loads(path.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}).", hint=HINT) from None
    key = next(
        (k for k in LOSS_KEYS if isinstance(data, dict) and isinstance(data.get(k), dict)), None
    )
    if key is None:
        raise InputError(f"{path}: no 'lm loss' entry.", hint=HINT)
    pts = _points(data[key])
    bad = sum(1 for s, _ in pts if s != s)
    pts = [p for p in pts if p[0] == p[0]]
    if not pts:
        raise InputError(f"{path}: 'lm loss' holds no values.", hint=HINT)
    b = SeriesBuilder()
    b.add_block(step=np.array([s for s, _ in pts]), loss=np.array([v for _, v in pts]))
    log = ParsedLog(format="megatron-golden", files=[path], series=b.build(), metric=key)
    log.records = len(pts) + bad
    log.unparseable = bad
    others = sorted(k for k in data if k != key)
    log.notes.append(
        f"Megatron golden values: '{key}' sampled every "
        f"{data[key].get('step_interval', 1)} step(s); other metrics present: "
        f"{', '.join(others[:6]) or 'none'}."
    )
    return log
