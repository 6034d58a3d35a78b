"""Format auto-detection: from a path (file or run folder) to a ParsedLog."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from companion.convert import parser
from companion.errors import InputError
from companion.evidence.golden import is_golden, parse_golden
from companion.evidence.series import ParsedLog
from companion.evidence.tabular import parse_csv, parse_jsonl, parse_trainer_state, sniff_csv
from companion.evidence.textio import is_lfs_pointer, lfs_error, read_head
from companion.evidence.textlogs import FORMAT_HINT, parse_text
from companion.evidence.tfevents import is_event_file, parse_events
from companion.evidence.wandb_run import (
    find_run_files,
    is_wandb_log,
    parse_wandb_log,
    summary_facts,
)

Check = Callable[[], None]


def _no_check() -> None:
    """Never cancelled."""


def sniff(path: Path, head: bytes) -> str:
    """The format name of one file, decided by content first and name second."""
    if is_lfs_pointer(head):
        raise lfs_error(path, head)
    if is_wandb_log(head):
        return "wandb-run"
    if is_event_file(head) or path.name.startswith("events.out.tfevents."):
        return "tensorboard"
    body = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if is_golden(head):
        return "megatron-golden"
    if body.startswith(b"{") and b'"log_history"' in head:
        return "hf-trainer-state"
    if path.name == "trainer_state.json":
        return "hf-trainer-state"
    if path.name == "wandb-summary.json":
        return "wandb-summary"
    python_dicts = body.startswith(b"{'")  # HF console dicts are Python reprs, not JSON
    if (body.startswith(b"{") and b"\n{" in body and not python_dicts) or path.suffix == ".jsonl":
        return "jsonl"
    if sniff_csv(head) or path.suffix.lower() == ".csv":
        return "csv"
    return "text"


def read_file(path: Path, check: Check = _no_check) -> ParsedLog:
    """Parse one log file of any supported format."""
    head = read_head(path)
    if not head:
        raise InputError(f"{path} is empty.", hint="point at the complete training log.")
    kind = sniff(path, head)
    if kind == "wandb-run":
        return parse_wandb_log(path, check)
    if kind == "tensorboard":
        return parse_events([path], check)
    if kind == "hf-trainer-state":
        return parse_trainer_state(path, check)
    if kind == "megatron-golden":
        return parse_golden(path)
    if kind == "wandb-summary":
        raise InputError(
            f"{path} holds only final values ({summary_facts(path)}), not the loss curve.",
            hint="pass the run folder (with run-*.wandb or files/output.log) or a CSV export.",
        )
    if kind == "jsonl":
        return parse_jsonl(path, check)
    if kind == "csv":
        return parse_csv(path, check)
    return parse_text(path, check)


def read_folder(folder: Path, check: Check = _no_check) -> ParsedLog:
    """A W&B run folder, a TensorBoard log dir or an HF/LLaMA-Factory output folder."""
    wandb_log, output, summary = find_run_files(folder)
    if wandb_log is not None:
        try:
            return parse_wandb_log(wandb_log, check)
        except InputError:
            if output is None:
                raise
    if output is not None:
        log = parse_text(output, check)
        log.notes.append("Read the run's files/output.log (console capture).")
        return log
    events = sorted(folder.rglob("events.out.tfevents.*"))
    if events:
        return parse_events(events, check)
    for name in ("trainer_state.json", "trainer_log.jsonl"):
        # several checkpoint-*/trainer_state.json: the largest holds the longest history
        found = sorted(folder.rglob(name), key=lambda p: (p.stat().st_size, str(p)))
        if found:
            return read_file(found[-1], check)
    if summary is not None:
        return read_file(summary, check)
    raise InputError(
        f"{folder}: no training log found (no run-*.wandb, output.log, TensorBoard events, "
        "trainer_state.json or trainer_log.jsonl).",
        hint=FORMAT_HINT,
    )


@parser("The training log", "check the log is complete and in a supported format.")
def read_log(path: Path, check: Check = _no_check) -> ParsedLog:
    """Parse a log file or run folder."""
    if not path.exists():
        raise InputError(f"{path} does not exist.", hint="check the path.")
    if path.is_dir():
        return read_folder(path, check)
    return read_file(path, check)
