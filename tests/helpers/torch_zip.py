"""torch.save-shaped zip checkpoints built byte by byte, without torch: the pickle opcodes
a protocol-2 `data.pkl` uses, a state dict of `_rebuild_tensor_v2` calls, and the zip layout
(`archive/data.pkl`, `archive/byteorder`, `archive/data/<key>`)."""

from __future__ import annotations

import struct
import zipfile
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
