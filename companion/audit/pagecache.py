"""How much of a file range sits in the page cache, asked with the cachestat system call
(Linux >= 6.5), which starts no I/O, unlike a RWF_NOWAIT read."""

from __future__ import annotations

import ctypes
import os

_CACHESTAT = 451  # Linux >= 6.5, the same number on every architecture


class _Range(ctypes.Structure):
    _fields_ = (("off", ctypes.c_uint64), ("len", ctypes.c_uint64))


class _Stat(ctypes.Structure):
    _fields_ = tuple((name, ctypes.c_uint64) for name in ("cache", "dirty", "wb", "ev", "rev"))


def _libc() -> ctypes.CDLL | None:
    """The C library, for cachestat (None where there is none to ask)."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc() if getattr(os, "O_DIRECT", 0) else None


def cached_pages(fd: int, offset: int, length: int) -> int | None:
    """Pages of [offset, offset + length) in the page cache; None if the kernel cannot say."""
    if _LIBC is None:
        return None
    rng, out = _Range(offset, length), _Stat()
    ok = _LIBC.syscall(_CACHESTAT, fd, ctypes.byref(rng), ctypes.byref(out), 0)
    return int(out.cache) if ok == 0 else None
