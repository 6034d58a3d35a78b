"""Rank stored fingerprints as parents of a query, calibrated against the store's null."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from companion.fingerprint import features as F
from companion.fingerprint.engine import feature_map
from companion.fingerprint.index import SketchIndex, p_value
from companion.fingerprint.schemas import Candidate, IdentifyResult, ModelFingerprint

Rows = Callable[[list[int]], dict[int, dict[str, Any]]]


def _evidence(query: ModelFingerprint, stored: dict[str, Any] | None) -> dict[str, Any]:
    """Exact r over shared features and the norm-gain quantile distance."""
    if stored is None:
        return {}
    other = ModelFingerprint.model_validate(
        {k: v for k, v in stored.items() if k in ModelFingerprint.model_fields}
    )
    r, shared = F.pearson_shared(feature_map(query), feature_map(other))
    gd = None
    if query.gains and len(query.gains) == len(other.gains):
        gd = round(float(np.mean(np.abs(np.subtract(query.gains, other.gains)))), 4)
    return {"exact_r": None if r is None else round(r, 4), "shared": shared, "gain_distance": gd}


def identify(
    query: ModelFingerprint, index: SketchIndex, top: int, alpha: float, rows: Rows
) -> IdentifyResult:
    """The `top` stored models nearest the query, each with its p and decision."""
    started = time.perf_counter()
    vec = F.decode(query.sketch)
    hits = index.search(vec, top, exclude=query.content_sha256)
    draws, summary = index.null()
    searched = time.perf_counter() - started
    stored = max(len(index) - (1 if _has_self(index, query) else 0), 1)
    details = rows([index.entries[i].fingerprint_id for i, _ in hits])
    candidates = []
    for i, score in hits:
        entry = index.entries[i]
        p, beyond = p_value(score, draws, summary)
        candidates.append(
            Candidate(
                path=entry.path,
                model_id=entry.model_id,
                score=round(score, 4),
                p=float(f"{p:.3g}"),
                related=beyond and p * stored <= alpha,
                **_evidence(query, details.get(entry.fingerprint_id)),
            )
        )
    return IdentifyResult(
        path=query.path,
        content_sha256=query.content_sha256,
        stored_as=_self_path(index, query),
        candidates=candidates,
        null=summary,
        seconds_search=round(searched, 5),
    )


def _has_self(index: SketchIndex, query: ModelFingerprint) -> bool:
    """Whether the query itself (same content) is in the index."""
    return _self_path(index, query) is not None


def _self_path(index: SketchIndex, query: ModelFingerprint) -> str | None:
    """The stored path of an identical copy of the query."""
    return next((e.path for e in index.entries if e.content_sha256 == query.content_sha256), None)
