"""A fast path for the generic grammar: one compiled template per line shape.

Once the first records are read line by line, the last record's line becomes a template:
its text literal, each number a capture group, the groups that hold its fields known. The
rest of a chunk is scanned with that one regex; runs of matching lines become numpy columns
at once, and every other line (a validation line, a warning) goes through the line-by-line
grammar, so the result is the same as the slow path's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from companion.evidence.kvgrammar import LEADING_STEP, NUM, PAIR, canon, parse_line

NUMBER = re.compile(NUM)
FAST_FIELDS = ("step", "loss", "lr", "tokens", "samples", "grad_norm")


@dataclass
class Template:
    """A compiled line shape and the capture group of each field."""

    pattern: re.Pattern[bytes]
    groups: dict[str, int]


def _value_starts(line: bytes) -> dict[str, int] | None:
    """Where each field's value starts on a template line (None: not a plain record)."""
    rec = parse_line(line)
    if "loss" not in rec.fields or set(rec.fields) - set(FAST_FIELDS):
        return None
    starts: dict[str, int] = {}
    for m in PAIR.finditer(line):
        name = canon(m.group("key").decode("ascii", "replace"))
        if name is not None and name not in starts:
            starts[name] = m.start("val")
    if "step" not in starts and (lead := LEADING_STEP.match(line)) is not None:
        starts["step"] = lead.start(1)
    return starts if "step" in starts else None


def _literal(text: bytes) -> bytes:
    """Escaped literal text; runs of blanks match any run of blanks (padding varies)."""
    return b"[ \\t]+".join(re.escape(part) for part in re.split(rb"[ \t]+", text))


def template(line: bytes) -> Template | None:
    """The template of one record line, or None when it is not a plain training record."""
    starts = _value_starts(line)
    if starts is None:
        return None
    parts, groups, pos = [], {}, 0
    for g, m in enumerate(NUMBER.finditer(line), start=1):
        parts += [_literal(line[pos : m.start()]), b"(" + NUM + b")"]
        groups.update({name: g for name, s in starts.items() if s == m.start()})
        pos = m.end()
    parts.append(_literal(line[pos:]))
    if set(groups) != set(starts):
        return None
    return Template(re.compile(rb"(?m)^" + b"".join(parts) + rb"\r?$"), groups)


def columns(tpl: Template, rows: list[tuple[bytes, ...]]) -> dict[str, np.ndarray]:
    """The fields of many matched lines as float64 columns."""
    table = np.array(rows, dtype=np.bytes_)
    if table.ndim == 1:
        table = table.reshape(-1, 1)
    out = {}
    for name, g in tpl.groups.items():
        col = np.char.lower(table[:, g - 1])
        out[name] = col.astype(np.float64)
    return out
