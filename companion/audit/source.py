"""What the audit needs from a checkpoint file, whatever its format or where it lives.

Safetensors files (and uncompressed PyTorch zips, and unquantized GGUF tensors) hand out their
stored words straight from disk, so the shared reader's block pool can serve them (`pooled`).
Quantized GGUF tensors, permuted Q/K rows and remote files hand out float32 chunks they
decode or fetch themselves; the kernel then reads them with `read_into` and never from the pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from companion.audit.safetensors import TensorInfo

Array = np.ndarray[Any, Any]


class TensorFile(Protocol):
    """One file of a checkpoint, read tensor by tensor, chunk by chunk."""

    path: Path

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        """Tensor entries by (HF-style) name."""
        ...

    @property
    def local(self) -> bool:
        """Whether `path` is a local file the shared reader can open and hash."""
        ...

    def span(self, info: TensorInfo) -> tuple[int, int]:
        """The bytes of `path` holding the tensor as stored (for read order and the plan)."""
        ...

    def pooled(self, info: TensorInfo) -> bool:
        """Whether `read_into` returns exactly the stored bytes at `span` (pool-servable)."""
        ...

    def read_into(self, info: TensorInfo, start: int, count: int, out: Array) -> Array:
        """Read `count` elements from element `start` into the byte buffer `out`; a view."""
        ...

    def read(self, name: str, start: int = 0, count: int | None = None) -> Array:
        """Copy `count` elements (default: all) of a tensor, flattened."""
        ...

    def prefetch(self, info: TensorInfo, start: int = 0, count: int | None = None) -> None:
        """Hint that a range will be read soon (may do nothing)."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


def read_whole(file: TensorFile, name: str, start: int, count: int | None) -> Array:
    """`read` in terms of `read_into` (bounds checked), for files that decode."""
    from companion.errors import InputError

    info = file.tensors[name]
    count = info.numel - start if count is None else count
    if start < 0 or count < 0 or start + count > info.numel:
        raise InputError(f"Range out of bounds for tensor {name!r}.", hint="report this bug.")
    buf = np.empty(count * info.np_dtype.itemsize, dtype=np.uint8)
    return file.read_into(info, start, count, buf)
