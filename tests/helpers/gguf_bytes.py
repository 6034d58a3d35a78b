"""GGUF files built byte by byte (struct), for headers no writer would produce: counts that
lie, odd dims, raw byte strings."""

from __future__ import annotations

import struct


def gstr(text: str | bytes) -> bytes:
    """A GGUF string: its uint64 length, then its bytes."""
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    """One metadata entry."""
    return gstr(key) + struct.pack("<I", vtype) + payload


def tensor_info(name: str, dims: list[int], qtype: int, offset: int) -> bytes:
    """One tensor info entry."""
    head = gstr(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
    return head + struct.pack("<IQ", qtype, offset)


def gguf_file(
    kvs: list[bytes],
    infos: list[bytes],
    data: bytes = b"\0" * 64,
    n_t: int | None = None,
    n_kv: int | None = None,
    version: int = 3,
) -> bytes:
    """A GGUF file from parts, its data section after 32-byte alignment (counts may lie)."""
    head = b"GGUF" + struct.pack(
        "<IQQ", version, len(infos) if n_t is None else n_t, len(kvs) if n_kv is None else n_kv
    )
    body = head + b"".join(kvs) + b"".join(infos)
    return body + b"\0" * (-len(body) % 32) + data
