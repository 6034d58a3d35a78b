"""Writers for the binary formats: W&B run-*.wandb (LevelDB-log framing of protobuf records)
and TensorBoard event files (through the tensorboard package's own writer)."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def varint(n: int) -> bytes:
    """Protobuf varint."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fbytes(num: int, data: bytes) -> bytes:
    """A length-delimited field."""
    return varint(num << 3 | 2) + varint(len(data)) + data


def fvarint(num: int, value: int) -> bytes:
    """A varint field."""
    return varint(num << 3) + varint(value)


def item(key: str, value: object) -> bytes:
    """HistoryItem/ConfigItem: key = 1, value_json = 16."""
    return fbytes(1, key.encode()) + fbytes(16, json.dumps(value).encode())


def history_record(num: int, step: int, values: dict[str, object]) -> bytes:
    """Record{num = 1, history = 2 {item = 1 ..., step = 2 {num = 1}}}."""
    items = b"".join(fbytes(1, item(k, v)) for k, v in {**values, "_step": step}.items())
    return fvarint(1, num) + fbytes(2, items + fbytes(2, fvarint(1, step)))


def config_record(num: int, values: dict[str, object]) -> bytes:
    """Record{config = 5 {update = 1 [ConfigItem]}} with W&B's {"value": ...} wrapping."""
    body = b"".join(fbytes(1, item(k, {"value": v})) for k, v in values.items())
    return fvarint(1, num) + fbytes(5, body)


def output_record(num: int, line: str) -> bytes:
    """Record{output = 4 {line = 3}}."""
    return fvarint(1, num) + fbytes(4, fvarint(1, 1) + fbytes(3, line.encode()))


def frame(records: Iterable[bytes], version: int = 0) -> bytes:
    """LevelDB log framing with W&B's header and crc32 seeded by the record type."""
    out = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, version))
    for data in records:
        pos, first = 0, True
        while True:
            room = BLOCK - len(out) % BLOCK
            if room < HEADER:
                out += b"\x00" * room
                continue
            frag = data[pos : pos + room - HEADER]
            pos += len(frag)
            end = pos >= len(data)
            rtype = FULL if first and end else FIRST if first else LAST if end else MIDDLE
            crc = zlib.crc32(frag, zlib.crc32(bytes([rtype]))) & 0xFFFFFFFF
            out += struct.pack("<IHB", crc, len(frag), rtype) + frag
            first = False
            if end:
                break
    return bytes(out)


def wandb_run_dir(
    root: Path,
    steps: Sequence[int],
    losses: Sequence[float],
    lrs: Sequence[float],
    vocab: int | None = None,
    big_config: bool = False,
) -> Path:
    """A local W&B run folder: run-<id>.wandb, files/wandb-summary.json, files/output.log."""
    run = root / "wandb" / "run-20240501_120000-abc123"
    (run / "files").mkdir(parents=True)
    records = [config_record(1, {"vocab_size": vocab} if vocab else {"lr": 1e-3})]
    if big_config:  # a record larger than a block: FIRST/MIDDLE/LAST fragments
        records.append(config_record(2, {"notes": "x" * 80_000}))
    for i, (s, loss, lr) in enumerate(zip(steps, losses, lrs, strict=True)):
        records.append(history_record(i + 3, s, {"train/loss": loss, "train/learning_rate": lr}))
        records.append(output_record(10**6 + i, f"step {s} loss {loss}"))
    (run / "run-abc123.wandb").write_bytes(frame(records))
    summary = {"train/loss": losses[-1], "_step": steps[-1], "_runtime": 12.5}
    (run / "files" / "wandb-summary.json").write_text(json.dumps(summary))
    (run / "files" / "output.log").write_text(
        "".join(
            f"{{'loss': {v:.4f}, 'learning_rate': {lr}, 'epoch': 0.1}}\n"
            for v, lr in zip(losses, lrs, strict=True)
        )
    )
    return run


def tensorboard_events(
    logdir: Path,
    steps: Sequence[int],
    losses: Sequence[float],
    lrs: Sequence[float],
    tensor: bool = False,
    tag: str = "train/loss",
) -> Path:
    """Event file written by tensorboard's EventFileWriter (simple_value or tensor scalars)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    def value(name: str, x: float, as_double: bool = False) -> summary_pb2.Summary.Value:
        if not tensor:
            return summary_pb2.Summary.Value(tag=name, simple_value=x)
        meta = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        )
        if as_double:  # packed into tensor_content, as tf.summary does for float64
            proto = tensor_pb2.TensorProto(
                dtype=types_pb2.DT_DOUBLE, tensor_content=struct.pack("<d", x)
            )
        else:
            proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[x])
        return summary_pb2.Summary.Value(tag=name, tensor=proto, metadata=meta)

    logdir.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(logdir))
    for s, loss, lr in zip(steps, losses, lrs, strict=True):
        summary = summary_pb2.Summary(
            value=[value(tag, loss), value("train/learning_rate", lr, True)]
        )
        writer.add_event(event_pb2.Event(step=s, wall_time=1.7e9 + s, summary=summary))
    writer.close()
    return next(logdir.glob("events.out.tfevents.*"))
