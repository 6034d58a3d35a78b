"""The `evidence.summarize` tool (CLI `companion evidence`, LSP, LLM)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from companion.errors import InputError
from companion.evidence.model import EvidenceSummary
from companion.evidence.textio import known_digest
from companion.manifest import InputFile, Manifest, sha256_file
from companion.tools import ToolContext, tool

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


class SummarizeInput(BaseModel):
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
    plot: str | None = Field(
        default=None, description="Write the loss-curve picture here (PNG, plus an .svg beside)."
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


def _manifest(args: SummarizeInput, files: list[Path]) -> Manifest:
    """Manifest of the inputs, reusing hashes computed while parsing."""
    inputs = []
    for p in sorted({f.resolve() for f in files}):
        try:
            size = p.stat().st_size
        except OSError as exc:
            raise InputError(f"Cannot stat {p}: {exc.strerror}.", hint="check it.") from None
        inputs.append(InputFile(path=str(p), size=size, sha256=known_digest(p) or sha256_file(p)))
    return Manifest(
        tool="evidence.summarize", parameters=args.model_dump(mode="json"), inputs=inputs
    )


@tool(
    "evidence.summarize",
    description="Summarize training-log evidence: was this model trained from scratch? Compares "
    "the first loss with ln(vocab size), checks averaging, fall rate, LR warm-up, resumes, "
    "spikes, NaNs and tokens; returns a verdict (from_scratch | warm_start | inconclusive) "
    "with reasons and figures.",
    read_only=True,
    cli="evidence",
    positional=("paths",),
    record=True,
)
def summarize_tool(args: SummarizeInput, ctx: ToolContext) -> EvidenceSummary:
    """Run the evidence pipeline on the given logs."""
    from companion.evidence.engine import CONFIG_NAMES, Request, summarize  # lazy: numpy

    paths = [ctx.path(p) for p in args.paths]
    config = ctx.path(args.config) if args.config else None
    logs = [p for p in paths if p.name not in CONFIG_NAMES or p.is_dir()]
    configs = [p for p in paths if p not in logs]
    if not logs:
        raise InputError(
            "No log among the paths (only config/tokenizer files).",
            hint="add the training log to the command.",
        )
    if configs and config is None and args.vocab_size is None:
        config = configs[0]
    req = Request(
        paths=logs,
        vocab_size=args.vocab_size,
        config=config,
        claimed_tokens=args.claimed_tokens,
        plot=ctx.path(args.plot) if args.plot else None,
    )
    return summarize(req, lambda files: _manifest(args, files), ctx.check_cancelled, ctx.progress)
