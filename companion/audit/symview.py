"""A checkpoint side seen through the roles the symmetry tests need, and their constants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from companion.audit.alignment import Key
from companion.audit.pairing import Side
from companion.audit.sketch import Scan, read_rows, read_whole, scan

Array = np.ndarray[Any, Any]
DRAWS = 19
EMB_ROWS = 1024
EMB_ENOUGH = 256
K_UNIT = 32
K_HEAD = 12
MAX_B_UNITS = 768
TEST_DIMS = 256  # B hidden dims in the calibrated hidden test (all are matched for the perm)
ALIGNED_Z = 5.0
ASSIGN = 512  # exact assignment up to this many B units; above: nearest match (null alike)
INPUTS = {  # projection role -> the norm slot before it
    "q": "attn_norm",
    "k": "attn_norm",
    "v": "attn_norm",
    "up": "mlp_norm",
    "gate": "mlp_norm",
}


@dataclass
class Model:
    """One side's tensors, streamed in float32 (never a whole matrix held; see sketch.py)."""

    side: Side
    skipped: list[str] = field(default_factory=list)

    def name(self, role: str, slot: str, layer: int | None, param: str = "weight") -> str | None:
        """The tensor name for a key, if present."""
        return self.side.by_key.get(Key(role, slot, layer, None, param))

    def matrix(self, role: str, layer: int | None) -> str | None:
        """The name of a 2-D tensor of this role at a layer, if present."""
        name = self.name(role, role, layer)
        return name if name is not None and len(self.side.ref(name).info.shape) == 2 else None

    def shape(self, name: str) -> tuple[int, ...]:
        """A tensor's shape."""
        return tuple(self.side.ref(name).info.shape)

    def width(self, role: str, layer: int | None, axis: int = 1) -> int:
        """One axis of a role's matrix at a layer (its input width by default; 0 if absent)."""
        name = self.matrix(role, layer)
        return self.shape(name)[axis] if name is not None else 0

    def vector(
        self, role: str, slot: str, layer: int | None, param: str = "weight"
    ) -> Array | None:
        """A small 1-D tensor (a norm gain or bias) in float64, or None."""
        name = self.name(role, slot, layer, param)
        if name is None or len(self.shape(name)) != 1 or self.shape(name)[0] > (1 << 20):
            return None
        x = read_whole(self.side.ref(name), name)
        return None if x is None else np.asarray(x, dtype=np.float64)

    def scan(self, role: str, layer: int, **kw: Any) -> Scan | None:
        """One streamed pass over a layer's matrix (None when absent or not finite)."""
        name = self.matrix(role, layer)
        if name is None:
            return None
        s = scan(self.side.ref(name), name, **kw)
        if not s.finite:
            self.skipped.append(f"{name}: non-finite values (left out of the alignment)")
            return None
        return s

    def lead_rows(self, role: str, layer: int, count: int) -> Array | None:
        """The first `count` rows of a layer's matrix (float64), or None."""
        name = self.matrix(role, layer)
        if name is None:
            return None
        x = read_rows(self.side.ref(name), name, count).astype(np.float64)
        return x if np.isfinite(x).all() else None

    def gain(self, slot: str, layer: int, hidden: int) -> Array:
        """The norm gain feeding a projection (ones when absent or mis-shaped)."""
        g = self.vector("norm", slot, layer)
        return g if g is not None and g.shape == (hidden,) else np.ones(hidden)


def residual_inputs() -> list[tuple[str, str]]:
    """(projection role, its input norm slot) for every projection reading the residual stream."""
    return list(INPUTS.items())
