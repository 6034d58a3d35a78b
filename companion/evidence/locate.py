"""Where things are in an open log document: first loss line, broken lines, NaNs, LFS.

Used by the editor provider on the in-memory text (which may be unsaved), through the same
parsers as the tool.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from companion.convert import as_input_error
from companion.errors import CompanionError
from companion.evidence.detect import sniff
from companion.evidence.kvgrammar import parse_line
from companion.evidence.series import ParsedLog
from companion.evidence.tabular import parse_csv, parse_jsonl
from companion.evidence.textio import Chunk, is_lfs_pointer, lfs_error
from companion.evidence.textlogs import detect_family, parse_text

MAX_DOC_BYTES = 64 << 20
_GOLDEN_VALUE = re.compile(r'"values"\s*:\s*\{\s*"(\d+)"\s*:\s*([-+0-9.eE]+)')
_JSON_LOSS = re.compile(r'"loss"\s*:\s*([-+0-9.eE]+|NaN|Infinity|-Infinity)')


@dataclass
class DocScan:
    """What the provider needs about a document (lines are 0-based)."""

    is_log: bool = False
    lfs_message: str | None = None
    format: str | None = None
    error: str | None = None
    first_line: int | None = None
    first_step: float | None = None
    first_loss: float | None = None
    unparseable: int = 0
    unparseable_lines: list[int] = field(default_factory=list)
    nonfinite_lines: list[int] = field(default_factory=list)
    vocab: int | None = None
    vocab_source: str = ""


def looks_like_log(text: str, path: Path) -> bool:
    """Whether a document is a training log (by content, or an LFS pointer with a log name)."""
    head = text[:65536].encode("utf-8", "replace")
    if is_lfs_pointer(head):
        return bool(re.search(r"(\.log|\.jsonl|\.csv|trainer_state\.json|output\.log)$", path.name))
    kind = sniff(path, head)
    if kind == "megatron-golden":
        return True
    if kind in ("hf-trainer-state", "csv", "jsonl"):
        return kind != "csv" or b"loss" in head.lower()
    return detect_family(head) is not None or looks_like_records(head)


def scan_document(text: str, path: Path) -> DocScan:
    """Parse a document's text and locate its interesting lines; hostile text is an error."""
    try:
        return _scan_document(text, path)
    except Exception as exc:
        converted = as_input_error(exc, f"The log {path.name}", "finish or fix the text.")
        if converted is None:
            raise
        return DocScan(is_log=True, error=converted.text)


def _scan_document(text: str, path: Path) -> DocScan:
    """`scan_document` without the conversion of failures."""
    data = text.encode("utf-8", "replace")
    head = data[:65536]
    if is_lfs_pointer(head):
        return DocScan(is_log=True, lfs_message=lfs_error(path, head).text)
    if len(data) > MAX_DOC_BYTES:
        return DocScan(is_log=True, error="document too large for live diagnostics")
    kind = sniff(path, head)
    if kind == "hf-trainer-state":
        return _scan_json(text)
    if kind == "megatron-golden":
        return _scan_golden(text)
    chunks = [Chunk(data, 0, data.count(b"\n"))]
    try:
        if kind == "csv":
            log = parse_csv(path, chunks=chunks)
        elif kind == "jsonl":
            log = parse_jsonl(path, chunks=chunks)
        else:
            log = parse_text(path, chunks=chunks)
    except CompanionError as exc:
        return DocScan(is_log=False, error=exc.text)
    return _from_log(log)


def _from_log(log: ParsedLog) -> DocScan:
    """DocScan from a parsed log (1-based parser lines -> 0-based editor lines)."""
    s = log.series
    first = next((i for i in range(len(s)) if s.loss[i] == s.loss[i]), None)  # first non-NaN
    return DocScan(
        is_log=True,
        format=log.format,
        first_line=None if log.first_line is None else log.first_line - 1,
        first_step=None if first is None else float(s.step[first]),
        first_loss=None if first is None else float(s.loss[first]),
        unparseable=log.unparseable,
        unparseable_lines=[n - 1 for n in log.unparseable_lines],
        nonfinite_lines=[n - 1 for n in log.nonfinite_lines],
        vocab=log.vocab,
        vocab_source=log.vocab_source,
    )


def looks_like_records(head: bytes, need: int = 2) -> bool:
    """Whether a head holds at least `need` lines the generic grammar reads as loss records."""
    found = 0
    for raw in head.split(b"\n")[:2000]:
        fields = parse_line(raw).fields
        if any(k in fields for k in ("loss", "eval", "ppl")):
            found += 1
            if found >= need:
                return True
    return False


def _scan_golden(text: str) -> DocScan:
    """Golden values: the line of the first value under "lm loss"."""
    scan = DocScan(is_log=True, format="megatron-golden")
    start = text.find('"lm loss"')
    m = _GOLDEN_VALUE.search(text, max(0, start))
    if m is not None:
        scan.first_line = text.count("\n", 0, m.start(1))
        scan.first_step, scan.first_loss = float(m.group(1)), float(m.group(2))
    return scan


def _scan_json(text: str) -> DocScan:
    """trainer_state.json: the first `"loss":` line and NaN losses."""
    scan = DocScan(is_log=True, format="hf-trainer-state")
    try:
        json.loads(text)
    except (ValueError, RecursionError) as exc:
        scan.error = f"not valid JSON: {exc}"
    for n, line in enumerate(text.splitlines()):
        m = _JSON_LOSS.search(line)
        if m is None:
            continue
        try:
            value = float(m.group(1).replace("Infinity", "inf"))
        except (ValueError, OverflowError):  # a number still being typed: "2.", "1e"
            continue
        if scan.first_line is None:
            scan.first_line, scan.first_loss = n, value
        if value != value or value in (float("inf"), float("-inf")):
            scan.nonfinite_lines.append(n)
    return scan
