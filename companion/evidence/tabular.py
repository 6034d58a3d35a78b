"""Structured logs: W&B CSV exports, HF trainer_state.json, LLaMA-Factory trainer_log.jsonl."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from companion.errors import InputError
from companion.evidence import metrics
from companion.evidence.series import ParsedLog, SeriesBuilder
from companion.evidence.textio import Chunk, open_text_chunks, read_head

MAX_JSON_BYTES = 1 << 30


def _num(value: object) -> float:
    """A JSON/CSV value as float (NaN when absent or not a number)."""
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, int | float):
        return float(value)
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


def parse_csv(
    path: Path, check: Callable[[], None] = lambda: None, chunks: Iterable[Chunk] | None = None
) -> ParsedLog:
    """A W&B panel CSV export (Step + '<run> - <metric>' columns) or a plain step/loss CSV."""
    rows = csv.reader(line for _, line in _text_lines(path, check, chunks))
    try:
        header = next(rows)
    except StopIteration:
        raise InputError(f"{path} has no CSV header.", hint="export the chart again.") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc}).", hint="export it again.") from None
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
    loss_i = loss_cols[0]
    run = names[loss_i][0]
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
    b = SeriesBuilder()
    width = len(header)
    line = 1
    try:
        for row in rows:
            line += 1
            if line % 65536 == 0:
                check()
            if len(row) != width:
                log.note_unparseable(line)
                continue
            cell = row[loss_i]
            if not cell:
                continue  # W&B leaves cells empty where this metric was not logged
            loss, step = _num(cell), _num(row[step_i])
            if math.isnan(step) or (math.isnan(loss) and cell.strip().lower() != "nan"):
                log.note_unparseable(line)
                continue
            if not math.isfinite(loss) and len(log.nonfinite_lines) < 20:
                log.nonfinite_lines.append(line)
            if log.first_line is None:
                log.first_line = line
            lr = _num(row[lr_i]) if lr_i is not None else math.nan
            tok = _num(row[tok_i]) if tok_i is not None else math.nan
            b.add(step, loss, lr, tok)
    except csv.Error as exc:
        raise InputError(
            f"{path}: malformed CSV near line {line} ({exc}).", hint="re-export."
        ) from None
    log.records = line
    log.series = b.build()
    _require_values(log, path)
    return log


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
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise InputError(f"{path} is {size} bytes; too large for JSON.", hint="split it.")
    raw = path.read_bytes()
    if raw[:3] == b"\xef\xbb\xbf":
        raw = raw[3:]
    if not raw.strip():
        raise InputError(f"{path} is empty.", hint="point at the complete file.")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
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
        except (json.JSONDecodeError, RecursionError):
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
