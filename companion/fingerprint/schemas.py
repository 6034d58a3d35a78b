"""Input and result schemas of `fingerprint.compute` and `fingerprint.identify`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from companion.manifest import InputFile
from companion.model import Model
from companion.tools import Facts, ToolResult

SCHEME = "ops-v1"


class FingerprintInput(Model):
    """Arguments of `fingerprint.compute`."""

    paths: list[str] = Field(
        min_length=1, description="Checkpoints: .safetensors files, index.json or folders."
    )


class ModelFingerprint(Model):
    """One checkpoint's fingerprint (a few KB), or why it could not be computed."""

    path: str
    status: Literal["ok", "failed"] = "ok"
    error: str | None = None
    content_sha256: str = Field(
        default="", description="sha256 of the sorted input file digests (the model's identity)."
    )
    scheme: str = SCHEME
    hidden: int | None = None
    layers: int = 0
    nbytes: int = 0
    layout: dict[str, Any] = Field(
        default_factory=dict,
        description="Operators present: {'layers': [[layer, [kinds]]], 'top': [...]}; the "
        "feature keys are regenerated from it.",
    )
    values: str = Field(default="", description="Feature values, base64 float16, spec order.")
    sketch: str = Field(default="", description="Count sketch for the index, base64 float16.")
    gains: list[float] = Field(
        default_factory=list, description="Quantiles of all norm gains over their medians."
    )
    files: list[InputFile] = Field(default_factory=list)
    seconds: float = 0.0

    @property
    def size_bytes(self) -> int:
        """Stored size of the fingerprint's data (values, sketch, layout)."""
        return len(self.values) + len(self.sketch) + len(str(self.layout))


class FingerprintResult(ToolResult):
    """Fingerprints of every checkpoint given (failed ones say why)."""

    fingerprints: list[ModelFingerprint]

    def facts(self) -> Facts:
        """The store writes one fingerprint row per checkpoint."""
        failed = sum(f.status == "failed" for f in self.fingerprints)
        return Facts(
            table="fingerprint",
            verdict="failed" if failed == len(self.fingerprints) else None,
            rows=[f.model_dump(mode="json") for f in self.fingerprints],
        )

    def to_markdown(self) -> str:
        """A table of the fingerprints."""
        from companion.fingerprint.render import fingerprints_markdown

        return fingerprints_markdown(self)


class IdentifyInput(Model):
    """Arguments of `fingerprint.identify`."""

    path: str = Field(description="The checkpoint whose parent to look for.")
    top: int = Field(default=5, ge=1, le=100, description="How many candidates to list.")
    confirm: bool = Field(
        default=False, description="Run the full pairwise audit on the related candidates."
    )
    alpha: float = Field(
        default=0.01, gt=0, lt=1, description="Family-wise error rate of the `related` decision."
    )


class Candidate(Model):
    """One stored model as a possible parent, with its calibrated score."""

    path: str
    model_id: int | None
    score: float = Field(description="Sketch correlation of the fingerprints (≈ Pearson r).")
    p: float = Field(description="P-value against the store's unrelated-pair null.")
    related: bool = Field(description="p x stored models <= alpha and above every null draw.")
    exact_r: float | None = Field(default=None, description="Exact r over shared features.")
    shared: int = Field(default=0, description="Features both fingerprints have.")
    gain_distance: float | None = Field(
        default=None, description="Mean |difference| of the norm-gain quantiles."
    )
    audit_verdict: str | None = None
    audit_record: str | None = None


class NullSummary(Model):
    """The null the scores were tested against."""

    method: str
    draws: int
    median: float
    sd: float
    maximum: float
    excluded_related: int = 0
    stored: int = 0


class IdentifyResult(ToolResult):
    """Stored models ranked by likely parenthood of the queried checkpoint."""

    path: str
    content_sha256: str
    stored_as: str | None = Field(default=None, description="Path of an identical stored copy.")
    candidates: list[Candidate]
    null: NullSummary
    seconds_search: float = 0.0

    @property
    def parent(self) -> Candidate | None:
        """The best related candidate, if any."""
        return next((c for c in self.candidates if c.related), None)

    def facts(self) -> Facts:
        """Read-only: the decision and its first reason."""
        best = self.parent
        verdict = "related" if best else "no known parent"
        reason = f"{best.path}: score {best.score:.3f}, p = {best.p:.2g}" if best else ""
        return Facts(verdict=verdict, reasons=(reason,) if reason else ())

    def to_markdown(self) -> str:
        """Candidates with their evidence and the null."""
        from companion.fingerprint.render import identify_markdown

        return identify_markdown(self)

    def to_json(self) -> str:
        """`{"candidates": [...]}` best first, with the null and the query."""
        return self.model_dump_json(indent=2)
