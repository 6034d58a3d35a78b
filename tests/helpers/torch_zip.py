"""torch.save-shaped zip checkpoints built byte by byte, without torch: the pickle opcodes
a protocol-2 `data.pkl` uses, a state dict of `_rebuild_tensor_v2` calls, and the zip layout
(`archive/data.pkl`, `archive/byteorder`, `archive/data/<key>`)."""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

STORAGE = {np.dtype("<f4"): "FloatStorage", np.dtype("<f2"): "HalfStorage"}
STORAGE[np.dtype(ml_dtypes.bfloat16)] = "BFloat16Storage"


def u(text: str) -> bytes:
    """BINUNICODE."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def int_op(n: int) -> bytes:
    """BININT."""
    return b"J" + struct.pack("<i", n)


def tuple_op(items: list[bytes]) -> bytes:
    """MARK items TUPLE."""
    return b"(" + b"".join(items) + b"t"


def global_op(module: str, name: str) -> bytes:
    """GLOBAL (protocol 0 style, which protocol 2 pickles use too)."""
    return b"c" + f"{module}\n{name}\n".encode()


def state_dict_pickle(specs: list[tuple[str, str, str, int, tuple[int, ...]]]) -> bytes:
    """A data.pkl like torch.save writes: (name, storage class, key, numel, shape) each."""
    out = b"\x80\x02" + global_op("collections", "OrderedDict") + b")R("
    for name, storage, key, numel, shape in specs:
        strides = [int(np.prod(shape[i + 1 :])) for i in range(len(shape))]
        pid = tuple_op([u("storage"), global_op("torch", storage), u(key), u("cpu"), int_op(numel)])
        args = [
            pid + b"Q",
            int_op(0),
            tuple_op([int_op(d) for d in shape]),
            tuple_op([int_op(s) for s in strides]),
            b"\x89",
            global_op("collections", "OrderedDict") + b")R",
        ]
        out += u(name) + global_op("torch._utils", "_rebuild_tensor_v2") + tuple_op(args) + b"R"
    return out + b"u."


def write_zip(path: Path, pkl: bytes, storages: dict[str, np.ndarray[Any, Any]]) -> Path:
    """A torch.save-style zip: archive/data.pkl, archive/byteorder, archive/data/<key>."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "little")
        for key, arr in storages.items():
            zf.writestr(f"archive/data/{key}", np.ascontiguousarray(arr).tobytes())
        zf.writestr("archive/version", "3\n")
    return path


def handmade(path: Path, tensors: dict[str, np.ndarray[Any, Any]]) -> Path:
    """A zip checkpoint of numpy arrays, one storage each."""
    specs, storages = [], {}
    for i, (name, arr) in enumerate(tensors.items()):
        specs.append((name, STORAGE[arr.dtype], str(i), arr.size, arr.shape))
        storages[str(i)] = arr
    return write_zip(path, state_dict_pickle(specs), storages)


@dataclass
class Raw:
    """One zip member written byte by byte: `data` as stored, the rest as claimed."""

    name: str
    data: bytes
    method: int = 0
    size: int | None = None  # the uncompressed size claimed (default: len(data))
    crc: int | None = None  # default: the CRC-32 of `data`
    flags: int = 0
    local_name: str | None = None  # the local header's name (default: `name`)


def raw_zip(path: Path, members: list[Raw], prefix: bytes = b"") -> Path:
    """A zip whose headers say whatever the members claim (zipfile would not write them)."""
    body, central = bytearray(prefix), bytearray()
    for m in members:
        name, local = m.name.encode(), (m.local_name or m.name).encode()
        size = len(m.data) if m.size is None else m.size
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        fields = (m.flags, m.method, 0, 0, crc, len(m.data), size)
        offset = len(body) - len(prefix)
        body += struct.pack("<4sH", b"PK\x03\x04", 20)
        body += struct.pack("<HHHHIII", *fields) + struct.pack("<HH", len(local), 0) + local
        body += m.data
        central += struct.pack("<4sHH", b"PK\x01\x02", 20, 20) + struct.pack("<HHHHIII", *fields)
        central += struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, offset) + name
    counts = (len(members), len(members), len(central), len(body) - len(prefix), 0)
    path.write_bytes(body + central + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, *counts))
    return path


def long_op(n: int) -> bytes:
    """LONG1 (any size), or BININT when it fits."""
    if -(2**31) <= n < 2**31:
        return int_op(n)
    raw = n.to_bytes(n.bit_length() // 8 + 1, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def tensor_pickle(numel: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> bytes:
    """A state dict of one float tensor `w` over storage `0`, sizes written as they are."""
    pid = tuple_op([u("storage"), global_op("torch", "FloatStorage"), u("0"), u("cpu")])
    args = [
        pid[:-1] + long_op(numel) + b"tQ",
        int_op(0),
        tuple_op([long_op(d) for d in shape]),
        tuple_op([long_op(s) for s in strides]),
        b"\x89",
        global_op("collections", "OrderedDict") + b")R",
    ]
    head = b"\x80\x02" + global_op("collections", "OrderedDict") + b")R("
    return head + u("w") + global_op("torch._utils", "_rebuild_tensor_v2") + tuple_op(args) + b"Ru."
