"""TensorBoard event files read directly: TFRecord framing plus the Event protobuf.

No tensorflow and no EventAccumulator (which keeps a 10k-scalar reservoir sample by
default): every scalar of the loss, learning-rate and token tags is kept. Both TF1
`simple_value` and TF2 `tensor` scalars are decoded.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from pathlib import Path

import numpy as np

from companion import files
from companion.errors import InputError
from companion.evidence import metrics
from companion.evidence.protowire import (
    FIXED32,
    FIXED64,
    LENGTH,
    WireError,
    as_bytes,
    as_double,
    as_float,
    as_int,
    as_str,
    fields,
    packed_varints,
)
from companion.evidence.series import ParsedLog, SeriesBuilder

MAX_RECORD = 1 << 30
_POLY = 0x82F63B78
_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), table driven; used on the 8-byte length headers."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def is_event_file(head: bytes) -> bool:
    """Whether a head is a TFRecord whose first record is a TensorBoard file_version event."""
    if len(head) < 16:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 0 < length < 4096 and b"brain.Event:" in head[12 : 12 + length]


class _Tags:
    """Scalars of interesting tags, compactly (array('d'))."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[array[float], array[float]]] = {}

    def add(self, tag: str, step: float, value: float) -> None:
        """Record one scalar if the tag matters for the analysis."""
        if tag not in self.data:
            wanted = (
                metrics.loss_rank(tag) is not None
                or metrics.eval_rank(tag) is not None
                or metrics.is_lr(tag)
                or metrics.is_tokens(tag)
                or metrics.is_samples(tag)
            )
            if not wanted:
                return
            self.data[tag] = (array("d"), array("d"))
        steps, values = self.data[tag]
        steps.append(step)
        values.append(value)


_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8", 19: "<f2"}


def _tensor_scalar(buf: bytes) -> float | None:
    """The value of a one-element TensorProto, or None if it is not a numeric scalar."""
    dtype, content, values = 0, b"", []
    for number, wire, value in fields(buf):
        if number == 1:
            dtype = as_int(value)
        elif number == 2:
            for _n, _w, dim in fields(as_bytes(value)):
                for dn, _dw, size in fields(as_bytes(dim)):
                    if dn == 1 and as_int(size) != 1:
                        return None
        elif number == 4:
            content = as_bytes(value)
        elif number == 5:
            raw = as_bytes(value) if wire == LENGTH else b""
            values += (
                [as_float(value)]
                if wire == FIXED32
                else list(np.frombuffer(raw[: len(raw) // 4 * 4], "<f4"))
            )
        elif number == 6:
            raw = as_bytes(value) if wire == LENGTH else b""
            values += (
                [as_double(value)]
                if wire == FIXED64
                else list(np.frombuffer(raw[: len(raw) // 8 * 8], "<f8"))
            )
        elif number in (7, 10, 13):
            ints = packed_varints(as_bytes(value)) if wire == LENGTH else [as_int(value)]
            if number == 13:  # half_val: float16 bit patterns in int32s
                values += [float(np.array([i & 0xFFFF], "<u2").view("<f2")[0]) for i in ints]
            else:
                values += [float(i) for i in ints]
    if content and dtype in _DTYPES:
        item = np.dtype(_DTYPES[dtype]).itemsize
        arr = np.frombuffer(content[: len(content) // item * item], _DTYPES[dtype])
        return float(arr[0]) if arr.size == 1 else None
    if content and dtype == 14 and len(content) == 2:  # DT_BFLOAT16: top half of a float32
        bits = int.from_bytes(content, "little") << 16
        return float(np.array([bits], "<u4").view("<f4")[0])
    return float(values[0]) if len(values) == 1 else None


def _event(buf: bytes, tags: _Tags) -> None:
    """Decode one Event and keep its scalar summary values."""
    step = 0
    summary = None
    for number, _wire, value in fields(buf):
        if number == 2:
            step = as_int(value)
        elif number == 5:
            summary = as_bytes(value)
    if summary is None:
        return
    for number, _wire, value in fields(summary):
        if number != 1:
            continue
        tag, scalar = "", None
        for vn, vw, vv in fields(as_bytes(value)):
            if vn == 1 or (vn == 7 and not tag):
                tag = as_str(vv)
            elif vn == 2 and vw == FIXED32:
                scalar = as_float(vv)
            elif vn == 8:
                scalar = _tensor_scalar(as_bytes(vv))
        if tag and scalar is not None:
            tags.add(tag, float(step), scalar)


def read_event_file(path: Path, tags: _Tags, log: ParsedLog, check: Callable[[], None]) -> None:
    """Read every record of one event file; a truncated tail is reported, never hidden."""
    n = 0
    fh = files.open_regular(path, "Event file")
    with fh:
        while True:
            header = fh.read(12)
            if not header:
                break
            if len(header) < 12:
                log.notes.append(
                    f"{path.name}: ends with a truncated record header after {n} records."
                )
                log.unparseable += 1
                break
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc(header[:8]) != length_crc or length > MAX_RECORD:
                if n == 0:
                    raise InputError(
                        f"{path} is not a TFRecord/TensorBoard event file (bad length checksum).",
                        hint="pass an events.out.tfevents.* file written by TensorBoard.",
                    )
                log.notes.append(
                    f"{path.name}: corrupt record header after {n} records; the rest is unread."
                )
                log.unparseable += 1
                break
            body = fh.read(length + 4)
            if len(body) < length + 4:
                log.notes.append(
                    f"{path.name}: last record truncated ({len(body)} of {length + 4} bytes) "
                    f"after {n} complete records."
                )
                log.unparseable += 1
                break
            n += 1
            if n % 4096 == 0:
                check()
            if masked_crc(body[:length]) != struct.unpack("<I", body[length:])[0]:
                # the length was intact but the payload is not: skip this record only
                log.note_unparseable(None)
                if not any("payload checksum" in note for note in log.notes):
                    log.notes.append(f"{path.name}: record {n} has a bad payload checksum.")
                continue
            try:
                _event(body[:length], tags)
            except WireError:
                log.note_unparseable(None)
    log.records += n


def parse_events(paths: list[Path], check: Callable[[], None] = lambda: None) -> ParsedLog:
    """Read one or more event files (in name order) into one loss series."""
    tags = _Tags()
    log = ParsedLog(format="tensorboard", files=paths, series=SeriesBuilder().build())
    for p in paths:
        read_event_file(p, tags, log, check)
    return series_from_tags(tags.data, log, paths[0] if paths else Path("."))


def series_from_tags(
    data: dict[str, tuple[array[float], array[float]]], log: ParsedLog, where: Path
) -> ParsedLog:
    """Pick the loss tag and align learning rate and token counters to its steps."""
    loss_tag = metrics.best_loss(data)
    if loss_tag is None:
        raise InputError(
            f"{where}: no training-loss scalar among tags {sorted(data)[:8]}.",
            hint="log the loss as a scalar (e.g. train/loss), or pass another log.",
        )
    steps = np.frombuffer(data[loss_tag][0], dtype=np.float64)
    loss = np.frombuffer(data[loss_tag][1], dtype=np.float64)
    cols: dict[str, np.ndarray] = {"step": steps.copy(), "loss": loss.copy()}
    for col, pred in (
        ("lr", metrics.is_lr),
        ("tokens", metrics.is_tokens),
        ("samples", metrics.is_samples),
    ):
        tag = next((t for t in data if pred(t)), None)
        if tag is not None:
            lookup = dict(zip(data[tag][0], data[tag][1], strict=True))
            cols[col] = np.array([lookup.get(s, np.nan) for s in steps.tolist()])
    b = SeriesBuilder()
    b.add_block(**cols)
    log.series = b.build()
    log.metric = loss_tag
    others = sorted(t for t in data if metrics.loss_rank(t) is not None and t != loss_tag)
    if others:
        log.notes.append(f"Loss tag {loss_tag!r} used; other loss tags: {', '.join(others[:5])}.")
    if (ev := metrics.best_eval(data)) is not None:
        log.eval_metric = ev
        log.eval_points = list(zip(data[ev][0][:1000], data[ev][1][:1000], strict=True))
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size:
        log.notes.append(
            f"{bad.size} non-finite {loss_tag!r} values (first at step {steps[bad[0]]:g})."
        )
    return log
