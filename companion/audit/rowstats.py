"""Shared pieces of the shape-changing comparisons: row reads, a row-pairing test, findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from companion.audit.checkpoint import TensorRef
from companion.audit.matching import unit_rows
from companion.audit.safetensors import decode
from companion.audit.schemas import Derivation, Reason

Array = np.ndarray[Any, Any]
RELATED_Z = 5.0  # the same threshold as the permutation tests (verdict.PERM_Z)
MIN_GAP = 0.05  # and the same margin of the observed statistic over the null mean
ROW_DRAWS = 199
TESTS = ("vocabulary", "width", "width_sliced", "upcycle")  # reasons from calibrated tests


@dataclass
class Findings:
    """What the shape-changing comparisons found: reasons, derivations, and whether related."""

    reasons: list[Reason] = field(default_factory=list)
    derivations: list[Derivation] = field(default_factory=list)
    related: bool = False
    handled: set[str] = field(default_factory=set)  # role groups an alignment compared
    inputs: set[Path] = field(default_factory=set)  # files read beside the checkpoints

    def only_evidence(self) -> Reason | None:
        """The deciding reason when only shape alignments compared anything, and none related."""
        tests = [r for r in self.reasons if r.kind in TESTS]
        if self.related or not tests:
            return None
        return Reason(
            kind="shapes_only",
            strength="strong",
            statement=(
                f"Every tensor changed shape; {len(tests)} shape alignments compared what they "
                "could and stayed inside their nulls. Without a direct comparison that is not "
                "enough for 'independent'. Next step: compare the tokenizers and configs "
                "(companion tokenizer compare, companion arch diff) or the training logs."
            ),
        )

    def add(self, other: Findings) -> None:
        """Merge another module's findings into these."""
        self.reasons += other.reasons
        self.derivations += other.derivations
        self.related = self.related or other.related
        self.handled |= other.handled
        self.inputs |= other.inputs


@dataclass(frozen=True)
class RowTest:
    """Mean Pearson of paired rows against the same statistic under random row pairings."""

    observed: float
    null_mean: float
    null_sd: float
    p: float
    draws: int
    rows: int

    @property
    def z(self) -> float:
        """z of the observation against the null draws."""
        return (self.observed - self.null_mean) / max(self.null_sd, 1e-9)

    @property
    def related(self) -> bool:
        """Beyond the null by RELATED_Z and MIN_GAP, with the smallest p the draws allow."""
        floor = 1.0 / (1 + self.draws)
        return self.z >= RELATED_Z and self.observed - self.null_mean >= MIN_GAP and self.p <= floor

    def text(self) -> str:
        """The figures in one phrase."""
        return (
            f"mean row Pearson {self.observed:.3f} over {self.rows} rows vs random-pairing null "
            f"{self.null_mean:.3f}±{self.null_sd:.3f} (z {self.z:.1f}, p {self.p:.3f}, "
            f"{self.draws} draws)"
        )

    def reason(self, kind: str, role: str, what: str, null_name: str) -> Reason:
        """This test as a reason: `what` is said first, then the figures and the outcome."""
        return Reason(
            kind=kind,
            role=role,
            strength="strong" if self.related else "info",
            statement=f"{what}: {self.text()}"
            + (" — related." if self.related else " — inside the null."),
            figure=self.observed,
            baseline=self.null_mean,
            baseline_name=null_name,
            z=self.z,
            p=self.p,
        )


def read_row_set(ref: TensorRef, rows: Array) -> Array:
    """The given rows of a 2-D tensor (float32), reading runs of consecutive rows at once."""
    cols = int(ref.info.shape[1])
    order = np.argsort(rows, kind="stable")
    srt = rows[order]
    out = np.empty((rows.size, cols), np.float32)
    start = 0
    while start < srt.size:
        end = start + 1
        while end < srt.size and srt[end] == srt[end - 1] + 1:
            end += 1
        first, n = int(srt[start]), end - start
        raw = ref.file.read(ref.info.name, first * cols, n * cols)
        out[order[start:end]] = np.asarray(decode(raw, np.float32)).reshape(n, cols)
        start = end
    return out


def row_test(xa: Array, xb: Array, seed: int, draws: int = ROW_DRAWS) -> RowTest | None:
    """Paired rows (same count, same width) against random pairings of the same rows."""
    if xa.shape != xb.shape or xa.shape[0] < 8 or xa.shape[1] < 2:
        return None
    za = unit_rows(np.nan_to_num(xa.astype(np.float64)))
    zb = unit_rows(np.nan_to_num(xb.astype(np.float64)))
    observed = float(np.mean(np.sum(za * zb, axis=1)))
    rng = np.random.default_rng([seed, xa.shape[0], 47])
    null = np.array(
        [
            float(np.mean(np.sum(za * zb[rng.permutation(zb.shape[0])], axis=1)))
            for _ in range(draws)
        ]
    )
    p = float((1 + np.count_nonzero(null >= observed)) / (1 + draws))
    return RowTest(observed, float(null.mean()), float(null.std()), p, draws, xa.shape[0])


def sample_rows(count: int, limit: int, seed: int) -> Array:
    """Up to `limit` distinct row indices out of `count`, sorted, deterministic."""
    if count <= limit:
        return np.arange(count)
    rng = np.random.default_rng([seed, count, 53])
    return np.sort(rng.choice(count, size=limit, replace=False))
