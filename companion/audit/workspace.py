"""Per-thread buffers reused across chunks and tensor pairs, so the streamed pass allocates
nothing per chunk and resident memory stays flat."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


class Workspace:
    """Buffers reused by one thread across chunks and pairs."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, str], Array] = {}

    def get(self, name: str, n: int, dtype: Any) -> Array:
        """A buffer of at least `n` elements of `dtype` (grown, never shrunk); first n."""
        key = (name, np.dtype(dtype).str)
        buf = self.buffers.get(key)
        if buf is None or buf.size < n:
            buf = np.empty(max(n, 1), dtype=dtype)
            self.buffers[key] = buf
        return buf[:n]

    def ones(self, n: int, dtype: Any) -> Array:
        """A buffer of n ones."""
        key = ("ones", np.dtype(dtype).str)
        buf = self.buffers.get(key)
        if buf is None or buf.size < n:
            buf = self.buffers[key] = np.ones(max(n, 1), dtype=dtype)
        return buf[:n]


_local = threading.local()


def workspace() -> Workspace:
    """This thread's workspace."""
    ws = getattr(_local, "ws", None)
    if ws is None:
        ws = _local.ws = Workspace()
    return ws
