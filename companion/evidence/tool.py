"""The `evidence.summarize` tool (CLI `companion evidence`, LSP, LLM)."""

from __future__ import annotations

from pathlib import Path

from companion.errors import InputError
from companion.evidence.schemas import EvidenceSummary, SummarizeInput
from companion.evidence.textio import known_digest
from companion.files import output_target
from companion.manifest import InputFile, Manifest, sha256_file
from companion.tools import ToolContext, tool


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


def _plot_target(ctx: ToolContext, args: SummarizeInput) -> Path | None:
    """The plot path (PNG, with an SVG beside it), refused if it would replace a file unasked."""
    if not args.plot:
        return None
    png = ctx.path(args.plot)
    output_target(png, args.overwrite, "Plot")
    output_target(png.with_suffix(".svg"), args.overwrite, "Plot")
    return png


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
    outputs=("plot",),
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
        plot=_plot_target(ctx, args),
        vocab_search=args.vocab_search,
    )
    return summarize(req, ctx.job(), lambda files: _manifest(args, files))
