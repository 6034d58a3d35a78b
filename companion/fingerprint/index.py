"""The search index over stored sketches, and the store's own null of unrelated pairs.

The index is an exact brute-force matrix product: sketches are 256 floats, so 100k of them
are a 100 MB float32 matrix and one query is one BLAS matrix-vector product plus an
argpartition (bench/identify.py measures it against a one-by-one scan and keeps it under
the 100 ms budget at 10k and 100k without an approximate library or its recall loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from companion.fingerprint.features import SKETCH_DIM, decode
from companion.fingerprint.schemas import NullSummary

Array = np.ndarray[Any, Any]
NULL_PAIRS = 4000
MIN_STORE_DRAWS = 200
RELATED_Z = 6.0  # null pairs this far above the robust centre are related, not null


@dataclass
class Entry:
    """Who a row of the index is."""

    fingerprint_id: int
    model_id: int | None
    path: str
    content_sha256: str


@dataclass
class SketchIndex:
    """Stored sketches as one matrix (rows unit-norm) with their owners."""

    entries: list[Entry]
    matrix: Array
    _null: tuple[Array, NullSummary] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, rows: list[tuple[int, int | None, str, str, str]]) -> SketchIndex:
        """An index from `(id, model_id, path, digest, sketch)` rows."""
        entries = [Entry(r[0], r[1], r[2], r[3]) for r in rows]
        matrix = np.zeros((len(rows), SKETCH_DIM), dtype=np.float32)
        for i, r in enumerate(rows):
            vec = decode(r[4])
            if vec.shape == (SKETCH_DIM,):
                matrix[i] = vec / (float(np.linalg.norm(vec)) or 1.0)
        return cls(entries, matrix)

    def __len__(self) -> int:
        return len(self.entries)

    def search(self, query: Array, k: int, exclude: str = "") -> list[tuple[int, float]]:
        """The k best rows by sketch correlation (row index, score), best first."""
        if not self.entries:
            return []
        scores = self.matrix @ (query / (float(np.linalg.norm(query)) or 1.0))
        if exclude:
            for i, e in enumerate(self.entries):
                if e.content_sha256 == exclude:
                    scores[i] = -np.inf
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(i), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def null(self) -> tuple[Array, NullSummary]:
        """Scores of stored pairs taken as unrelated (cached): the same statistic as a query."""
        if self._null is None:
            self._null = null_scores(self.matrix)
        return self._null


def _pair_draws(matrix: Array, rng: np.random.Generator) -> Array:
    """Sketch correlations of random distinct stored pairs."""
    n = matrix.shape[0]
    if n < 2:
        return np.zeros(0)
    total = n * (n - 1) // 2
    if total <= NULL_PAIRS:
        i, j = np.triu_indices(n, 1)
    else:
        i = rng.integers(0, n, NULL_PAIRS)
        j = (i + rng.integers(1, n, NULL_PAIRS)) % n
    return np.asarray(np.einsum("ij,ij->i", matrix[i], matrix[j]))


def _shuffle_draws(matrix: Array, count: int, rng: np.random.Generator) -> Array:
    """Correlations of stored sketches with coordinate-shuffled others (a small store's null)."""
    n = matrix.shape[0]
    if n == 0:
        return np.asarray(rng.standard_normal(count) / np.sqrt(SKETCH_DIM))
    a = matrix[rng.integers(0, n, count)]
    b = matrix[rng.integers(0, n, count)]
    perm = np.argsort(rng.random((count, SKETCH_DIM)), axis=1)
    return np.asarray(np.einsum("ij,ij->i", a, np.take_along_axis(b, perm, axis=1)))


def null_scores(matrix: Array, seed: int = 0) -> tuple[Array, NullSummary]:
    """The null: stored pairs minus outlying (related) ones; shuffles fill a small store."""
    rng = np.random.default_rng(seed)
    draws = _pair_draws(matrix, rng)
    excluded = 0
    method = "stored pairs"
    if draws.size:
        centre, scale = _robust(draws)
        keep = draws < centre + RELATED_Z * scale
        excluded = int((~keep).sum())
        draws = draws[keep]
    if draws.size < MIN_STORE_DRAWS:
        extra = _shuffle_draws(matrix, 2000, rng)
        draws = np.concatenate([draws, extra])
        method = "stored pairs + coordinate shuffles (small store)"
    centre, scale = _robust(draws)
    summary = NullSummary(
        method=method,
        draws=int(draws.size),
        median=round(centre, 4),
        sd=round(scale, 4),
        maximum=round(float(draws.max()), 4),
        excluded_related=excluded,
        stored=int(matrix.shape[0]),
    )
    return np.sort(draws), summary


def _robust(x: Array) -> tuple[float, float]:
    """Median and MAD-based standard deviation (never zero)."""
    centre = float(np.median(x))
    scale = 1.4826 * float(np.median(np.abs(x - centre)))
    return centre, max(scale, 1e-6)


def p_value(score: float, draws: Array, summary: NullSummary) -> tuple[float, bool]:
    """Empirical p (add-one); beyond every draw, the robust Gaussian tail (capped by it)."""
    n = int(draws.size)
    above = n - int(np.searchsorted(draws, score, side="left"))
    p_emp = (1 + above) / (1 + n)
    if above > 0:
        return p_emp, False
    tail = float(norm.sf((score - summary.median) / summary.sd))
    return min(p_emp, max(tail, 1e-300)), True
