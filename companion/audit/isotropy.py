"""Is B - A isotropic noise? Its 90 %-energy rank against that of a Gaussian of the same shape.

A Gaussian matrix's squared singular values follow the Marchenko-Pastur law, so the share
of its rank holding 90 % of the energy depends on the aspect ratio only (0.52 square, 0.67
at 2:1). Noise added to A reaches that share; a fine-tune's delta, with its low-rank part,
stays below it.
"""

from __future__ import annotations

from functools import cache
from statistics import median
from typing import TYPE_CHECKING

import numpy as np

from companion.audit.alignment import Key
from companion.audit.schemas import DeltaStat

if TYPE_CHECKING:
    from companion.audit.pairing import Side

NOISE_RATIO = 0.9  # a delta at >= 90 % of the Gaussian's rank share is called noise


@cache
def gaussian_rank90_share(rows: int, cols: int) -> float:
    """The share of min(rows, cols) holding 90 % of a Gaussian matrix's energy (MP law)."""
    c = min(rows, cols) / max(rows, cols)
    lo, hi = (1 - np.sqrt(c)) ** 2, (1 + np.sqrt(c)) ** 2
    x = np.linspace(lo, hi, 20001)[1:-1]
    density = np.sqrt(np.maximum((hi - x) * (x - lo), 0.0)) / (2 * np.pi * c * x)
    mass = density / density.sum()
    energy = np.cumsum((x * mass)[::-1])  # from the top singular values down
    k = int(np.searchsorted(energy, 0.9 * energy[-1]))
    return float(mass[::-1][: k + 1].sum())


def isotropy(side: Side, deltas: list[DeltaStat]) -> float | None:
    """Median over deltas of rank90 share / the Gaussian's share of the same shape."""
    ratios = []
    for d in deltas:
        name = side.by_key.get(Key(d.name, d.name, d.layer, None, "weight"))
        if name is None or d.full_rank == 0:
            continue
        rows, cols = side.ref(name).info.shape[:2]
        ratios.append(d.rank90 / d.full_rank / gaussian_rank90_share(int(rows), int(cols)))
    return float(median(ratios)) if ratios else None
