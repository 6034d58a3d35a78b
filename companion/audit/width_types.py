"""The result of one survival test: which units (or heads) of A a pruned B kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from companion.audit.hidden import Calibrated


@dataclass(frozen=True)
class Survival:
    """One layer's B -> A assignment of units or heads, its null, and the clear survivors."""

    kind: str  # "mlp" (FFN units), "heads", "kv" (key/value heads), "dim_qk" / "dim_vo"
    layer: int
    layer_b: int
    units_a: int
    units_b: int
    tested: int
    survivors: int
    test: Calibrated
    first_a: list[int]
    groups: list[str] = field(default_factory=list)  # kv: A head or group of each B head
    extra: dict[str, int] = field(default_factory=dict)  # further counts, as figures
