"""Result models of the evidence engine (pydantic; rendered as markdown for people)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from companion.manifest import Manifest
from companion.model import Model
from companion.tools import EXPERT, Facts, ToolResult

Verdict = Literal["from_scratch", "warm_start", "inconclusive"]
Direction = Literal["from_scratch", "warm_start", "neutral"]
Strength = Literal["strong", "moderate", "weak", "info"]
Figure = float | int | str | None

STRENGTH_SCORE = {"strong": 3, "moderate": 2, "weak": 1, "info": 0}


class Finding(Model):
    """One observation about the loss curve, with the figures behind it."""

    name: str = Field(description="Stable identifier, e.g. initial_loss, warmup, spikes.")
    direction: Direction = Field(description="Which verdict this observation supports.")
    strength: Strength
    message: str = Field(description="One sentence a person can check, with the numbers.")
    figures: dict[str, Figure] = Field(default_factory=dict)


class Reason(Model):
    """A reason for the verdict, with the figures it rests on."""

    text: str
    figures: dict[str, Figure] = Field(default_factory=dict)


class ParseReport(Model):
    """What the parser saw: counts a person can check against the file."""

    records: int = Field(description="Lines (text) or records (binary) read.")
    values: int = Field(description="Loss values parsed.")
    unparseable: int = Field(description="Broken record lines or records, counted.")
    unparseable_lines: list[int] = Field(default_factory=list, description="First few (1-based).")
    nonfinite: int = Field(description="NaN or inf loss values.")
    nonfinite_lines: list[int] = Field(default_factory=list)
    skipped_iterations: int = 0
    nan_iterations: int = 0
    first_line: int | None = Field(default=None, description="Line of the first loss record.")
    used_lines: int = Field(default=0, description="Lines that gave a value (text logs).")
    used_line_refs: list[int] = Field(default_factory=list, description="First few used lines.")
    skipped_lines: int = Field(default=0, description="Record-like lines that gave no loss.")
    skipped_line_refs: list[int] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class RunPart(Model):
    """One run of a file holding several (the step counter went back to the start)."""

    index: int
    values: int
    first_step: float | None
    first_loss: float | None
    last_step: float | None
    last_loss: float | None
    verdict: Verdict
    reason: str = Field(description="The leading reason of this run's verdict.")


class EvidenceSummary(ToolResult):
    """Was this run trained from scratch? The verdict, its reasons and every figure used."""

    verdict: Verdict
    format: str
    metric: str
    files: list[str]
    first_step: float | None
    first_loss: float | None
    first_lr: float | None = None
    window: int | None = Field(default=None, description="Steps averaged into the first value.")
    window_kind: str = "point"
    last_step: float | None = None
    last_loss: float | None = None
    min_loss: float | None = None
    vocab_size: int | None = None
    vocab_source: str | None = None
    vocab_file: str | None = Field(
        default=None, description="The config/tokenizer file V was read from, if any."
    )
    ln_vocab: float | None = None
    tokens_seen: float | None = None
    claimed_tokens: float | None = None
    reasons: list[Reason] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    parse: ParseReport
    runs: list[RunPart] = Field(default_factory=list, description="Each run, when several.")
    plot_png: str | None = None
    plot_svg: str | None = None
    manifest: Manifest
    record_id: str | None = None

    def to_markdown(self) -> str:
        """Render for people (the editor action opens this, picture included)."""
        from companion.evidence.render import render_markdown

        return render_markdown(self)

    def facts(self) -> Facts:
        """An evidence summary: its verdict and reasons."""
        return Facts(table="evidence", verdict=self.verdict, reasons=tuple(self.reasons))


_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


class SummarizeInput(Model):
    """Arguments of `evidence.summarize`."""

    paths: list[str] = Field(
        min_length=1,
        description="Training logs (any supported format) or run folders; several files of "
        "one run are read in order. A config.json/tokenizer.json among them sets V.",
    )
    vocab_size: int | None = Field(
        default=None, ge=2, le=1 << 31, description="Vocabulary size V (for ln V)."
    )
    config: str | None = Field(
        default=None, description="config.json or tokenizer.json giving V (instead of N)."
    )
    vocab_search: int = Field(
        json_schema_extra=EXPERT,
        default=2,
        ge=0,
        le=2,
        description="Folders above the log searched for config.json/tokenizer.json giving V "
        "(0 = only the log's own folder; the file used is reported).",
    )
    plot: str | None = Field(
        default=None, description="Write the loss-curve picture here (PNG, plus an .svg beside)."
    )
    overwrite: bool = Field(
        default=False, description="Replace an existing output file (asked for on the CLI)."
    )
    claimed_tokens: float | None = Field(
        default=None, gt=0, description="Claimed training budget in tokens (e.g. 19.7T, 2e12)."
    )

    @field_validator("paths", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """Accept one comma-separated string too."""
        if isinstance(value, str):
            return [p for p in (s.strip() for s in value.split(",")) if p]
        return value

    @field_validator("claimed_tokens", mode="before")
    @classmethod
    def _suffix(cls, value: object) -> object:
        """Accept 15T / 300B / 2.5e12."""
        if isinstance(value, str) and (
            m := re.fullmatch(r"\s*([\d.]+)\s*([kmbgtKMBGT])\s*", value)
        ):
            return float(m.group(1)) * _SUFFIX[m.group(2).lower()]
        return value

    @model_validator(mode="after")
    def _exclusive(self) -> SummarizeInput:
        """--vocab-size and --config are alternatives."""
        if self.vocab_size is not None and self.config is not None:
            raise ValueError("give either vocab_size or config, not both")
        return self
