"""W&B local run folders: the binary run-*.wandb transaction log, summary and output.log.

`run-*.wandb` is LevelDB log framing (32 KiB blocks; records split FULL/FIRST/MIDDLE/LAST,
each with a 7-byte header: crc32, uint16 length, uint8 type) after a 7-byte file header
(":W&B", magic 0xBEE1, version). W&B's checksum is zlib crc32 seeded with the crc32 of the
type byte. Each record is a protobuf `Record` (history = 2, config = 5, run = 17) whose
history items carry `value_json`. No maintained reader installs offline without pulling in
the whole wandb client, so this small reader is ours (see docs/formats.md).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path

from companion import files
from companion.errors import InputError
from companion.evidence.protowire import WireError, as_bytes, as_int, as_str, fields
from companion.evidence.series import ParsedLog, SeriesBuilder
from companion.evidence.tfevents import series_from_tags

BLOCK = 32768
HEADER = 7
IDENT = b":W&B"
MAGIC = 0xBEE1
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_TYPE_CRC = {t: zlib.crc32(bytes([t])) & 0xFFFFFFFF for t in (FULL, FIRST, MIDDLE, LAST)}


def is_wandb_log(head: bytes) -> bool:
    """Whether a head starts with the W&B datastore header."""
    return len(head) >= HEADER and head[:4] == IDENT


def records(path: Path, problems: list[str]) -> Iterator[bytes]:
    """Yield each reassembled record payload; framing damage is reported in `problems`."""
    fh = files.open_regular(path, "W&B run log")
    with fh:
        head = fh.read(HEADER)
        if len(head) < HEADER or head[:4] != IDENT:
            raise InputError(
                f"{path} is not a W&B run log (missing ':W&B' header).",
                hint="pass the run-*.wandb file or its run folder.",
            )
        _ident, magic, version = struct.unpack("<4sHB", head)
        if magic != MAGIC or version > 1:
            raise InputError(
                f"{path}: unsupported W&B log (magic {magic:#x}, version {version}).",
                hint="this reader knows version 0 and 1 logs with magic 0xbee1.",
            )
        offset = HEADER
        pending: list[bytes] | None = None
        while True:
            room = BLOCK - offset % BLOCK
            if room < HEADER:  # block trailer: zero padding
                fh.read(room)
                offset += room
                continue
            rec_head = fh.read(HEADER)
            if not rec_head:
                break
            if len(rec_head) < HEADER:
                problems.append(f"truncated record header at byte {offset}")
                break
            crc, length, rtype = struct.unpack("<IHB", rec_head)
            if rtype == 0 and length == 0 and crc == 0:  # zero-filled rest of a block
                skip = room - HEADER
                fh.read(skip)
                offset += room
                continue
            data = fh.read(length)
            offset += HEADER + len(data)
            if len(data) < length:
                problems.append(f"truncated record at byte {offset - len(data) - HEADER}")
                break
            if rtype not in _TYPE_CRC or zlib.crc32(data, _TYPE_CRC[rtype]) & 0xFFFFFFFF != crc:
                problems.append(f"checksum mismatch at byte {offset - length - HEADER}")
                pending = None
                continue
            if rtype == FULL:
                pending = None
                yield data
            elif rtype == FIRST:
                pending = [data]
            elif pending is None:
                problems.append(f"orphan record fragment at byte {offset - length - HEADER}")
            else:
                pending.append(data)
                if rtype == LAST:
                    yield b"".join(pending)
                    pending = None
        if pending is not None:
            problems.append("file ends inside a multi-block record")


def _items(buf: bytes) -> Iterator[tuple[str, str]]:
    """(key, value_json) of HistoryItem/ConfigItem/SummaryItem messages in a record body."""
    for number, _w, value in fields(buf):
        if number != 1:
            continue
        key, nested, value_json = "", [], ""
        for n, _w2, v in fields(as_bytes(value)):
            if n == 1:
                key = as_str(v)
            elif n == 2:
                nested.append(as_str(v))
            elif n == 16:
                value_json = as_str(v)
        yield "/".join(nested) if nested else key, value_json


def _json_number(text: str) -> float:
    """A value_json as float (NaN/Infinity allowed, non-numbers -> NaN)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def parse_wandb_log(path: Path, check: Callable[[], None] = lambda: None) -> ParsedLog:
    """History (and config vocab_size) from a binary run-*.wandb file."""
    log = ParsedLog(format="wandb-run", files=[path], series=SeriesBuilder().build())
    problems: list[str] = []
    tags: dict[str, tuple[array[float], array[float]]] = {}
    n = 0
    for payload in records(path, problems):
        n += 1
        if n % 4096 == 0:
            check()
        try:
            _record(payload, tags, log)
        except WireError:
            log.note_unparseable(None)
    log.records = n
    for p in problems[:5]:
        log.notes.append(f"{path.name}: {p}.")
    log.unparseable += len(problems)
    if not tags:
        raise InputError(
            f"{path}: {n} records but no history values"
            + (f" ({problems[0]})" if problems else "")
            + ".",
            hint="the run may have logged nothing yet; pass files/output.log or a CSV export.",
        )
    return series_from_tags(tags, log, path)


def _record(
    payload: bytes, tags: dict[str, tuple[array[float], array[float]]], log: ParsedLog
) -> None:
    """Dispatch one Record: history rows and config items."""
    for number, _w, value in fields(payload):
        if number == 2:
            _history(as_bytes(value), tags)
        elif number == 5:
            _config(as_bytes(value), log)
        elif number == 17:  # RunRecord.config = 4
            for rn, _rw, rv in fields(as_bytes(value)):
                if rn == 4:
                    _config(as_bytes(rv), log)


def _history(buf: bytes, tags: dict[str, tuple[array[float], array[float]]]) -> None:
    """One history row: every numeric item at the row's step."""
    step = math.nan
    row: list[tuple[str, float]] = []
    for key, value_json in _items(buf):
        v = _json_number(value_json)
        if key == "_step":
            step = v
        elif not key.startswith("_"):
            row.append((key, v))
    for number, _w, value in fields(buf):
        if number == 2 and math.isnan(step):
            for sn, _sw, sv in fields(as_bytes(value)):
                if sn == 1:
                    step = float(as_int(sv))
    if math.isnan(step):
        step = 0.0
    for key, v in row:
        if key not in tags:
            tags[key] = (array("d"), array("d"))
        tags[key][0].append(step)
        tags[key][1].append(v)


def _config(buf: bytes, log: ParsedLog) -> None:
    """vocab_size / seq_length from the run config, when the script logged them."""
    for key, value_json in _items(buf):
        leaf = key.split("/")[-1]
        try:
            value = json.loads(value_json)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict) and "value" in value:  # config items are {"value": ...}
            value = value["value"]
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 31:
            if leaf in ("vocab_size", "padded_vocab_size") and log.vocab is None:
                log.vocab, log.vocab_source = value, f"W&B run config ({leaf})"
            elif leaf in ("seq_length", "seq_len", "max_seq_length", "block_size"):
                log.seq_length = log.seq_length or value


def find_run_files(folder: Path) -> tuple[Path | None, Path | None, Path | None]:
    """(run-*.wandb, files/output.log, files/wandb-summary.json) inside a run folder."""
    logs = sorted(folder.glob("run-*.wandb")) or sorted(folder.glob("*.wandb"))
    files = folder / "files" if (folder / "files").is_dir() else folder
    output = files / "output.log"
    summary = files / "wandb-summary.json"
    return (
        logs[0] if logs else None,
        output if output.is_file() else None,
        summary if summary.is_file() else None,
    )


def summary_facts(path: Path) -> str:
    """A one-line description of wandb-summary.json's final values (for messages)."""
    from companion.evidence.tabular import load_json

    data = load_json(path)
    if not isinstance(data, dict):
        return "not a JSON object"
    keys = [k for k in data if "loss" in k.lower()][:3]
    parts = [f"{k}={data[k]}" for k in keys] + [f"_step={data.get('_step')}"]
    return ", ".join(parts)
