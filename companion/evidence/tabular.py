"""Structured logs: W&B CSV exports, HF trainer_state.json, LLaMA-Factory trainer_log.jsonl."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from companion import files
from companion.errors import InputError
from companion.evidence import metrics
from companion.evidence.series import ParsedLog, SeriesBuilder
from companion.evidence.textio import Chunk, open_text_chunks, read_head

MAX_JSON_BYTES = 1 << 30
MAX_GRAD_NORMS = 4096  # the fresh-head test reads the first steps only


def _num(value: object) -> float:
    """A JSON/CSV value as float (NaN when absent or not a number)."""
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits: beyond any float
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return math.nan
    return math.nan


def _text_lines(
    path: Path, check: Callable[[], None], chunks: Iterable[Chunk] | None = None
) -> Iterator[tuple[int, str]]:
    """Stream (1-based line number, decoded line) without loading the file."""
    for chunk in open_text_chunks(path) if chunks is None else chunks:
        check()
        text = chunk.data.decode("utf-8", "replace")
        for i, line in enumerate(text.split("\n")):
            if line.strip():
                yield chunk.line_base + i + 1, line.rstrip("\r")


# ---- W&B CSV export ------------------------------------------------------------------------


def _split_wandb(col: str) -> tuple[str, str]:
    """'<run> - <metric>' -> (run, metric); plain columns have run ''."""
    if " - " in col:
        run, metric = col.rsplit(" - ", 1)
        return run.strip(), metric.strip()
    return "", col.strip()


@dataclass
class _CsvSpec:
    """Which columns matter and the per-chunk fast-path pattern."""

    width: int
    step: int
    loss: int
    lr: int | None
    tok: int | None
    row: re.Pattern[bytes]


def _row_pattern(width: int, wanted: list[int]) -> re.Pattern[bytes]:
    """A whole-line regex for unquoted CSV rows capturing only the wanted columns."""
    cells = [rb"([^,\r\n]*)" if i in wanted else rb"[^,\r\n]*" for i in range(width)]
    return re.compile(rb"(?m)^" + b",".join(cells) + rb"\r?$")


def parse_csv(
    path: Path, check: Callable[[], None] = lambda: None, chunks: Iterable[Chunk] | None = None
) -> ParsedLog:
    """A W&B panel CSV export (Step + '<run> - <metric>' columns) or a plain step/loss CSV."""
    source = iter(open_text_chunks(path) if chunks is None else chunks)
    first = next(source, None)
    cut = first.data.find(b"\n") + 1 if first is not None else 0
    head = first.data[: cut or len(first.data)] if first is not None else b""
    try:
        header = next(csv.reader([head.decode("utf-8", "replace").strip("\r\n")]))
    except (StopIteration, csv.Error) as exc:
        raise InputError(f"{path} has no CSV header ({exc}).", hint="export it again.") from None
    names = [_split_wandb(h) for h in header]
    step_i = next((i for i, (_, m) in enumerate(names) if metrics.is_step(m)), None)
    loss_name = metrics.best_loss(m for r, m in names if not m.endswith(("__MIN", "__MAX")))
    if step_i is None or loss_name is None:
        raise InputError(
            f"{path}: CSV columns {header[:6]} have no step and training-loss columns.",
            hint="export a loss panel from W&B (Step plus '<run> - train/loss'), or pass "
            "--vocab-size with a supported log.",
        )
    loss_cols = [i for i, (r, m) in enumerate(names) if m == loss_name]
    run = names[loss_cols[0]][0]
    log = ParsedLog(
        format="wandb-csv" if run else "csv",
        files=[path],
        series=SeriesBuilder().build(),
        metric=loss_name,
    )
    if len(loss_cols) > 1:
        others = ", ".join(names[i][0] or "?" for i in loss_cols[1:4])
        log.notes.append(f"CSV holds {len(loss_cols)} runs; summarised {run!r} (also: {others}).")
    same_run = [i for i, (r, _) in enumerate(names) if r == run]
    lr_i = next((i for i in same_run if metrics.is_lr(names[i][1])), None)
    tok_i = next((i for i in same_run if metrics.is_tokens(names[i][1])), None)
    wanted = [i for i in (step_i, loss_cols[0], lr_i, tok_i) if i is not None]
    spec = _CsvSpec(
        len(header), step_i, loss_cols[0], lr_i, tok_i, _row_pattern(len(header), wanted)
    )
    b = SeriesBuilder()
    chunks_after = (
        [Chunk(first.data[cut:], first.line_base + 1, first.nlines - 1)]
        if (first is not None and cut)
        else []
    )
    last = 1
    for chunk in itertools.chain(chunks_after, source):
        check()
        if not _csv_fast(chunk, spec, log, b):
            _csv_slow(chunk, spec, log, b)
        last = chunk.line_base + chunk.nlines + (not chunk.data.endswith(b"\n"))
    log.records = last
    log.series = b.build()
    _require_values(log, path)
    return log


def _csv_fast(chunk: Chunk, spec: _CsvSpec, log: ParsedLog, b: SeriesBuilder) -> bool:
    """Vectorised chunk parse when every line is a plain row; False to fall back."""
    data = chunk.data
    if b'"' in data:
        return False
    rows = spec.row.findall(data)
    if len(rows) != chunk.nlines + (not data.endswith(b"\n")) or not rows:
        return False
    wanted = [i for i in (spec.step, spec.loss, spec.lr, spec.tok) if i is not None]
    cols = (
        dict(zip(sorted(wanted), zip(*rows, strict=True), strict=True))
        if len(wanted) > 1
        else {wanted[0]: tuple(rows)}
    )
    loss_b = cols[spec.loss]
    keep = [i for i, c in enumerate(loss_b) if c]
    if not keep:
        return True
    try:
        loss = np.fromiter((float(loss_b[i]) for i in keep), np.float64, len(keep))
        step = np.fromiter((float(cols[spec.step][i]) for i in keep), np.float64, len(keep))
        extra = {
            name: np.fromiter(
                (float(cols[c][i]) if cols[c][i] else math.nan for i in keep), np.float64, len(keep)
            )
            for name, c in (("lr", spec.lr), ("tokens", spec.tok))
            if c is not None
        }
    except ValueError:
        return False
    if not np.isfinite(step).all():
        return False
    if log.first_line is None:
        log.first_line = chunk.line_base + keep[0] + 1
    bad = np.flatnonzero(~np.isfinite(loss))
    for j in bad[: 20 - len(log.nonfinite_lines)] if len(log.nonfinite_lines) < 20 else []:
        log.nonfinite_lines.append(chunk.line_base + keep[int(j)] + 1)
    b.add_block(step=step, loss=loss, **extra)
    return True


def _csv_slow(chunk: Chunk, spec: _CsvSpec, log: ParsedLog, b: SeriesBuilder) -> None:
    """Row by row with the csv module (quoted cells, ragged or broken rows)."""
    lines = chunk.data.decode("utf-8", "replace").split("\n")
    line = chunk.line_base
    try:
        for row in csv.reader(lines):
            line += 1
            if not row:
                continue
            if len(row) != spec.width:
                log.note_unparseable(line)
                continue
            cell = row[spec.loss]
            if not cell:
                continue  # W&B leaves cells empty where this metric was not logged
            loss, step = _num(cell), _num(row[spec.step])
            if math.isnan(step) or (math.isnan(loss) and cell.strip().lower() != "nan"):
                log.note_unparseable(line)
                continue
            if not math.isfinite(loss) and len(log.nonfinite_lines) < 20:
                log.nonfinite_lines.append(line)
            if log.first_line is None:
                log.first_line = line
            lr = _num(row[spec.lr]) if spec.lr is not None else math.nan
            tok = _num(row[spec.tok]) if spec.tok is not None else math.nan
            b.add(step, loss, lr, tok)
    except csv.Error as exc:
        raise InputError(
            f"{log.files[0]}: malformed CSV near line {line} ({exc}).", hint="export it again."
        ) from None


def _require_values(log: ParsedLog, path: Path) -> None:
    """Refuse a log with no loss values."""
    if len(log.series) == 0:
        raise InputError(
            f"{path}: no {log.metric!r} values found ({log.unparseable} unparseable rows).",
            hint="check the file is complete and holds training-loss values.",
        )


# ---- HF trainer_state.json -----------------------------------------------------------------


def load_json(path: Path) -> Any:
    """Parse a JSON file (size-guarded; BOM tolerated) or raise InputError."""
    raw = files.read_bytes(path, MAX_JSON_BYTES, "JSON log")
    if raw[:3] == b"\xef\xbb\xbf":
        raw = raw[3:]
    if not raw.strip():
        raise InputError(f"{path} is empty.", hint="point at the complete file.")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InputError(
            f"{path} is not valid JSON ({exc}); truncated or corrupted?",
            hint="use the complete file written at the end of a save.",
        ) from None


def parse_trainer_state(path: Path, check: Callable[[], None] = lambda: None) -> ParsedLog:
    """HF trainer_state.json: `log_history` losses (each the mean over logging_steps)."""
    head = read_head(path, 64)
    if head.startswith(b"version https://git-lfs"):
        from companion.evidence.textio import lfs_error

        raise lfs_error(path, read_head(path))
    data = load_json(path)
    history = data.get("log_history") if isinstance(data, dict) else None
    if not isinstance(history, list):
        raise InputError(f"{path} has no `log_history` list.", hint="pass HF's trainer_state.json.")
    log = ParsedLog(format="hf-trainer-state", files=[path], series=SeriesBuilder().build())
    logging_steps = data.get("logging_steps")
    if isinstance(logging_steps, int | float) and logging_steps >= 1:
        log.window = int(logging_steps)
        log.window_source = "trainer_state.json logging_steps"
    log.window_kind = "mean"
    b = SeriesBuilder()
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            log.note_unparseable(None)
            continue
        step = _num(entry.get("step"))
        if "loss" in entry:
            loss = _num(entry["loss"])
            if math.isnan(step) or (math.isnan(loss) and not _is_nan_literal(entry["loss"])):
                log.note_unparseable(None)
                continue
            b.add(
                step,
                loss,
                _num(entry.get("learning_rate")),
                _num(entry.get("num_input_tokens_seen")),
            )
            if "grad_norm" in entry and len(log.grad_norms) < MAX_GRAD_NORMS:
                log.grad_norms.append((step, _num(entry["grad_norm"])))
        elif "eval_loss" in entry and math.isfinite(_num(entry["eval_loss"])):
            log.eval_points.append((step, _num(entry["eval_loss"])))
        if i % 4096 == 0:
            check()
    log.eval_metric = "eval_loss"
    log.records = len(history)
    log.series = b.build()
    _require_values(log, path)
    return log


def _is_nan_literal(value: object) -> bool:
    """A value that genuinely is NaN/inf (not garbage)."""
    return isinstance(value, float) or (
        isinstance(value, str) and value.strip().lower() in {"nan", "inf", "-inf", "infinity"}
    )


# ---- LLaMA-Factory trainer_log.jsonl (and plain JSONL) -----------------------------------


def parse_jsonl(
    path: Path, check: Callable[[], None] = lambda: None, chunks: Iterable[Chunk] | None = None
) -> ParsedLog:
    """LLaMA-Factory trainer_log.jsonl (current_steps, loss, lr|learning_rate) or generic JSONL."""
    log = ParsedLog(format="jsonl", files=[path], series=SeriesBuilder().build())
    b = SeriesBuilder()
    last = 0
    for line_no, line in _text_lines(path, check, chunks):
        last = line_no
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            log.note_unparseable(line_no)
            continue
        if not isinstance(entry, dict):
            log.note_unparseable(line_no)
            continue
        if "current_steps" in entry:
            log.format = "llamafactory-jsonl"
        step_key = next((k for k in entry if metrics.is_step(k)), None)
        loss_key = metrics.best_loss(entry)
        if step_key is None:
            log.note_unparseable(line_no)
            continue
        step = _num(entry[step_key])
        if loss_key is None:
            if (ev := metrics.best_eval(entry)) is not None:
                log.eval_points.append((step, _num(entry[ev])))
                log.eval_metric = ev
            continue
        loss = _num(entry[loss_key])
        if math.isnan(step) or (math.isnan(loss) and not _is_nan_literal(entry[loss_key])):
            log.note_unparseable(line_no)
            continue
        if log.first_line is None:
            log.first_line, log.metric = line_no, loss_key
        if not math.isfinite(loss) and len(log.nonfinite_lines) < 20:
            log.nonfinite_lines.append(line_no)
        lr_key = next((k for k in entry if metrics.is_lr(k)), None)
        tok_key = next((k for k in entry if metrics.is_tokens(k)), None)
        b.add(
            step,
            loss,
            _num(entry[lr_key]) if lr_key else math.nan,
            _num(entry[tok_key]) if tok_key else math.nan,
        )
    log.records = last
    log.window_kind = "mean"
    log.series = b.build()
    _require_values(log, path)
    return log


def sniff_csv(head: bytes) -> bool:
    """Whether a file head looks like a CSV with a step column."""
    first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8", "replace")
    if "," not in first:
        return False
    try:
        cells = next(csv.reader(io.StringIO(first)))
    except (csv.Error, StopIteration):
        return False
    return any(metrics.is_step(c) for c in cells) and any(
        metrics.loss_rank(_split_wandb(c)[1]) is not None for c in cells
    )
