"""Streamed sketches of 2-D tensors: norms, random projections and bounded raw slices.

The alignment never holds a whole weight matrix: every tensor is read in float32 blocks of
whole rows (CHUNK elements at a time) and reduced while it streams. Peak memory is a few
blocks plus the sketches, whatever the model size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from companion.audit.checkpoint import TensorRef
from companion.audit.safetensors import decode

Array = np.ndarray[Any, Any]
CHUNK = 1 << 20  # elements per streamed block (4 MB as float32)
KEEP = 1 << 21  # raw elements of one tensor kept for a relabelling null (8 MB)
WHOLE = 1 << 22  # largest tensor read whole (float32) for a delta rank


def row_blocks(ref: TensorRef, name: str, limit: int | None = None) -> Iterator[tuple[int, Array]]:
    """A 2-D tensor (its first `limit` rows) as float32 blocks of whole rows (CHUNK elements)."""
    rows, cols = ref.info.shape
    rows = rows if limit is None else min(rows, limit)
    step = max(1, CHUNK // max(cols, 1))
    for start in range(0, rows, step):
        n = min(step, rows - start)
        raw = ref.file.read(name, start * cols, n * cols)
        yield start, np.asarray(decode(raw, np.float32)).reshape(n, cols)


def read_rows(ref: TensorRef, name: str, count: int) -> Array:
    """The first `count` rows of a 2-D tensor in float32 (one contiguous read)."""
    rows, cols = ref.info.shape
    n = min(count, rows)
    return np.asarray(decode(ref.file.read(name, 0, n * cols), np.float32)).reshape(n, cols)


def read_whole(ref: TensorRef, name: str) -> Array | None:
    """A tensor in float32 if it has at most WHOLE elements and is finite, else None."""
    if ref.info.numel > WHOLE:
        return None
    x = np.asarray(decode(ref.file.read(name), np.float32)).reshape(ref.info.shape)
    return x if np.isfinite(x).all() else None


@dataclass
class Scan:
    """What one streamed pass over a 2-D tensor W (rows x cols) kept."""

    col_sq: Array  # sum over rows of W², per column (float64)
    row_sq: Array  # sum over columns of W², per row
    right: Array | None  # W @ R (rows x k)
    left: Array | None  # Lᵀ @ W (k x cols)
    cols: Array | None  # W[:, :keep_cols] in float32
    finite: bool


def scan(
    ref: TensorRef,
    name: str,
    right: Array | None = None,
    left: Array | None = None,
    keep_cols: int = 0,
) -> Scan:
    """One pass over a 2-D tensor accumulating norms, projections and leading columns."""
    rows, cols = ref.info.shape
    col_sq = np.zeros(cols)
    row_sq = np.zeros(rows)
    out_r = np.zeros((rows, right.shape[1]), np.float32) if right is not None else None
    out_l = np.zeros((left.shape[1], cols)) if left is not None else None
    kept = np.zeros((rows, min(keep_cols, cols)), np.float32) if keep_cols else None
    r32 = right.astype(np.float32) if right is not None else None
    finite = True
    for start, block in row_blocks(ref, name):
        end = start + block.shape[0]
        # float32 squares summed per row and per column of one block (a few hundred rows),
        # totalled in float64; a NaN or Inf anywhere shows in the row sums.
        rows_sq = np.einsum("ij,ij->i", block, block)
        if not np.isfinite(rows_sq).all():
            finite = finite and bool(np.isfinite(block).all())
            block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
            rows_sq = np.square(block, dtype=np.float64).sum(axis=1)
        col_sq += np.einsum("ij,ij->j", block, block)
        row_sq[start:end] = rows_sq
        if out_r is not None and r32 is not None:
            out_r[start:end] = block @ r32
        if out_l is not None and left is not None:
            out_l += left[start:end].T @ block
        if kept is not None:
            kept[start:end] = block[:, : kept.shape[1]]
    return Scan(col_sq, row_sq, out_r, out_l, kept, finite)


def keep_budget(width: int, wanted: int) -> int:
    """How many rows (or columns) of length `width` fit the KEEP budget, at most `wanted`."""
    return max(2, min(wanted, KEEP // max(width, 1)))


class ProfileSketch:
    """A (hidden x features) profile, z-scored per feature and projected as features arrive.

    Equal to standardize(profile) @ R for a Gaussian R keyed by (seed, feature index), so
    the two sides share R when they add the same features in the same order.
    """

    def __init__(self, hidden: int, width: int, seed: int) -> None:
        self.acc = np.zeros((hidden, width))
        self.count, self.seed, self.width = 0, seed, width

    def add(self, cols: Array) -> None:
        """Add features given as columns (hidden x n)."""
        cols = np.asarray(cols, dtype=np.float64)
        sd = cols.std(axis=0)
        z = np.divide(cols - cols.mean(axis=0), sd, out=np.zeros_like(cols), where=sd > 0)
        rng = np.random.default_rng([self.seed, self.count, cols.shape[1], 29])
        self.acc += z @ (rng.standard_normal((cols.shape[1], self.width)) / np.sqrt(self.width))
        self.count += cols.shape[1]
