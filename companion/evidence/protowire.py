"""A minimal protobuf wire-format decoder (enough for TensorBoard events and W&B records).

Reading the wire format directly keeps the product free of tensorflow and wandb. Malformed
bytes raise `WireError`, which callers turn into an InputError or a counted bad record.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
Field = tuple[int, int, int | bytes]  # (number, wire type, value)


class WireError(ValueError):
    """The bytes are not a valid protobuf message."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a varint at pos; returns (value, new pos)."""
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint too long")


def fields(buf: bytes) -> Iterator[Field]:
    """Iterate the top-level fields of a message (groups are rejected)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
            yield number, wire, value
        elif wire == FIXED64:
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            yield number, wire, buf[pos : pos + 8]
            pos += 8
        elif wire == LENGTH:
            size, pos = read_varint(buf, pos)
            if pos + size > end:
                raise WireError("truncated length-delimited field")
            yield number, wire, buf[pos : pos + size]
            pos += size
        elif wire == FIXED32:
            if pos + 4 > end:
                raise WireError("truncated fixed32")
            yield number, wire, buf[pos : pos + 4]
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire}")


def as_bytes(value: int | bytes) -> bytes:
    """A length-delimited value (WireError if the field had another wire type)."""
    if not isinstance(value, bytes):
        raise WireError("expected a length-delimited field")
    return value


def as_str(value: int | bytes) -> str:
    """A string field."""
    return as_bytes(value).decode("utf-8", "replace")


def as_int(value: int | bytes) -> int:
    """A varint field as a signed 64-bit integer."""
    if not isinstance(value, int):
        raise WireError("expected a varint field")
    return value - (1 << 64) if value >= 1 << 63 else value


def as_double(value: int | bytes) -> float:
    """A fixed64 double."""
    b = as_bytes(value)
    if len(b) != 8:
        raise WireError("expected a double")
    return float(struct.unpack("<d", b)[0])


def as_float(value: int | bytes) -> float:
    """A fixed32 float."""
    b = as_bytes(value)
    if len(b) != 4:
        raise WireError("expected a float")
    return float(struct.unpack("<f", b)[0])


def packed_varints(buf: bytes) -> list[int]:
    """Decode a packed repeated varint field."""
    out, pos = [], 0
    while pos < len(buf):
        v, pos = read_varint(buf, pos)
        out.append(v)
    return out
