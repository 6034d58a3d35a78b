"""Input and result models of `case.investigate`: one question, one dossier."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from companion.manifest import Manifest
from companion.model import Model
from companion.tools import EXPERT, Facts, ToolResult

Verdict = Literal["derived", "independent", "inconclusive"]
ClaimVerdict = Literal["supports", "contradicts", "cannot tell"]
Points = Literal["derived", "independent", "neither"]
Weight = Literal["decisive", "strong", "moderate", "weak", "none"]
TrapStatus = Literal["avoided", "open", "not exercised"]


class CaseInput(Model):
    """Arguments of `case.investigate`."""

    a: str = Field(description="Reference model A: a folder (weights, config, tokenizer) or file.")
    b: str = Field(description="Model B, suspected of being derived from A.")
    logs_a: list[str] = Field(default_factory=list, description="Training logs of A.")
    logs_b: list[str] = Field(default_factory=list, description="Training logs of B.")
    claimed: str | None = Field(
        default=None,
        description="A claim to test, e.g. 'trained from scratch' or 'fine-tuned from A'.",
    )
    html: str | None = Field(default=None, description="Also write the HTML dossier here.")
    report: str | None = Field(default=None, description="Also write the markdown dossier here.")
    overwrite: bool = Field(
        default=False, description="Replace an existing output file (asked for on the CLI)."
    )
    seed: int = Field(
        json_schema_extra=EXPERT,
        default=0,
        ge=0,
        description="Seed for the weight audit's samples and nulls.",
    )

    @field_validator("logs_a", "logs_b", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """Accept one comma-separated string too."""
        if isinstance(value, str):
            return [p for p in (s.strip() for s in value.split(",")) if p]
        return value


class Side(Model):
    """What one side of the case has: weights, config, tokenizer, logs."""

    path: str
    weights: list[str] = Field(default_factory=list)
    config: str | None = None
    tokenizer: str | None = None
    logs: list[str] = Field(default_factory=list)


class Evidence(Model):
    """One link in the chain of reasoning: a tool's finding, its baseline, its weight."""

    source: str = Field(description="weights | log A | log B | architecture | tokenizer.")
    tool: str
    record_id: str | None = None
    verdict: str
    shows: str
    baseline: str
    weight: Weight
    points: Points


class Trap(Model):
    """A named trap of the derivation question, and how this case avoided it."""

    name: str
    status: TrapStatus
    explanation: str


class Rule(Model):
    """A combination rule that fired, with its name and what it concluded."""

    name: str
    verdict: Verdict
    because: str


class LayerPoint(Model):
    """One norm tensor's similarity at one layer, with its shuffle-null band."""

    layer: int
    role: str
    cosine: float | None = None
    pearson: float | None = None
    null_mean: float | None = None
    null_sd: float | None = None


class ArchRow(Model):
    """One differing architecture field."""

    field: str
    a: str
    b: str
    meaning: str


class TokenizerOverlap(Model):
    """The tokenizer comparison's headline figures."""

    relation: str
    size_a: int
    size_b: int
    shared: int
    jaccard: float
    same_id_fraction: float
    dominant_shift: int
    dominant_shift_fraction: float


class CaseResult(ToolResult):
    """The dossier: combined verdict, chain of reasoning, traps, what would change it, inputs."""

    case: str = Field(description="What was asked: is B derived from A?")
    a: Side
    b: Side
    verdict: Verdict
    claim: str | None = None
    claim_means: Verdict | None = None
    claim_verdict: ClaimVerdict | None = None
    headline: str
    rule: Rule
    chain: list[Evidence] = Field(default_factory=list)
    conflicts: list[str] = Field(default_factory=list)
    traps: list[Trap] = Field(default_factory=list)
    would_change: list[str] = Field(default_factory=list)
    layers: list[LayerPoint] = Field(default_factory=list)
    arch_rows: list[ArchRow] = Field(default_factory=list)
    shapes_compatible: bool | None = None
    tokenizer: TokenizerOverlap | None = None
    reconstructed: list[str] = Field(
        default_factory=list, description="Inputs that are reconstructions, not originals."
    )
    html_path: str | None = None
    report_path: str | None = None
    manifest: Manifest
    record_id: str | None = None

    def sub_records(self) -> list[str]:
        """The record ids of the sub-results (each link of the chain that was recorded)."""
        return [e.record_id for e in self.chain if e.record_id]

    def to_markdown(self) -> str:
        """The dossier for people."""
        from companion.case.render import render_markdown

        return render_markdown(self)

    def facts(self) -> Facts:
        """A case: its combined verdict and the rule that decided it."""
        return Facts(verdict=self.verdict, reasons=(self.rule, *self.chain))
