"""The `case.investigate` tool: every applicable engine on one pair, run through the registry."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from companion.case.schemas import CaseInput, CaseResult, Side
from companion.errors import InputError
from companion.files import output_target
from companion.tools import ToolContext, ToolResult, tool

NAME = "case.investigate"
STAGES = ("weights", "log A", "log B", "architecture", "tokenizer")


def _stage(ctx: ToolContext, index: int) -> ToolContext:
    """A context whose progress reports say which stage of the case is running."""
    outer = ctx.progress
    name = STAGES[index]

    def report(message: str, fraction: float | None) -> None:
        done = (index + (fraction or 0.0)) / len(STAGES)
        outer(f"{name}: {message}", done)

    return dataclasses.replace(ctx, progress=report)


def _typed(result: ToolResult, kind: type[Any]) -> Any:
    """A sub-result, checked to be the type its tool declares."""
    if not isinstance(result, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(result).__name__}")
    return result


def _log(ctx: ToolContext, side: Side, index: int, plot: Path | None) -> Any:
    """Summarize one side's logs (V from its config when it has one)."""
    from companion.evidence.schemas import EvidenceSummary

    if not side.logs:
        return None
    args: dict[str, Any] = {"paths": side.logs}
    if side.config:
        args["config"] = side.config
    if plot is not None:
        args["plot"] = str(plot)
    return _typed(ctx.run("evidence.summarize", args, _stage(ctx, index)), EvidenceSummary)


def _gather(args: CaseInput, ctx: ToolContext, a: Side, b: Side, plots: Path | None) -> Any:
    """Run every engine whose inputs both sides have; returns the gathered sub-results."""
    from companion.architecture.schemas import DiffResult, TokenizerResult
    from companion.audit.schemas import AuditResult
    from companion.case.chain import Gathered
    from companion.case.inventory import audit_target

    audit = diff = tok = None
    wa, wb = audit_target(a), audit_target(b)
    if wa and wb:
        raw = {"a": wa, "b": wb, "seed": args.seed}
        audit = _typed(ctx.run("audit.compare", raw, _stage(ctx, 0)), AuditResult)
    log_a = _log(ctx, a, 1, None if plots is None else plots / "loss-a.png")
    log_b = _log(ctx, b, 2, None if plots is None else plots / "loss-b.png")
    if a.config and b.config:
        raw = {"a": a.config, "b": b.config}
        diff = _typed(ctx.run("arch.diff", raw, _stage(ctx, 3)), DiffResult)
    if a.tokenizer and b.tokenizer:
        raw = {"a": a.tokenizer, "b": b.tokenizer}
        tok = _typed(ctx.run("tokenizer.compare", raw, _stage(ctx, 4)), TokenizerResult)
    return Gathered(audit=audit, log_a=log_a, log_b=log_b, diff=diff, tokenizer=tok)


def _write(path: Path, text: str, what: str) -> None:
    """Write one output file, as a clear error when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"Cannot write the {what} {path}: {exc.strerror or exc}.",
            hint=f"choose a writable --{what} path.",
        ) from None


@tool(
    NAME,
    description="Investigate whether model B was derived from model A: finds each side's "
    "weights, config, tokenizer and logs, runs every applicable engine (weight audit, log "
    "evidence, architecture diff, tokenizer comparison), and combines them into one dossier: "
    "verdict (derived | independent | inconclusive), a claim judged (supports | contradicts | "
    "cannot tell), the chain of reasoning, traps avoided, what would change it, the manifest.",
    read_only=True,
    cli="investigate",
    positional=("a", "b"),
    record=True,
    outputs=("html", "report"),
)
def investigate_tool(args: CaseInput, ctx: ToolContext) -> CaseResult:
    """Tool entry point for `case.investigate`."""
    from companion.case.engine import investigate
    from companion.case.html import render_html
    from companion.case.inventory import discover

    a = discover(ctx.path(args.a), [ctx.path(p) for p in args.logs_a])
    b = discover(ctx.path(args.b), [ctx.path(p) for p in args.logs_b])
    if args.claimed:
        from companion.case.rules import claim_means

        claim_means(args.claimed)  # a claim we cannot read fails before the long work
    html = ctx.path(args.html) if args.html else None
    report = ctx.path(args.report) if args.report else None
    for target, what in ((html, "HTML dossier"), (report, "Report")):
        if target is not None:
            output_target(target, args.overwrite, what)
    with tempfile.TemporaryDirectory(prefix="companion-case-") as tmp:
        plots = Path(tmp) if html is not None else None
        g = _gather(args, ctx, a, b, plots)
        result = investigate(args, a, b, g)
        if html is not None:
            result = result.model_copy(update={"html_path": str(html)})
            _write(html, render_html(result, plots), "html")
    if report is not None:
        result = result.model_copy(update={"report_path": str(report)})
        _write(report, result.to_markdown(), "report")
    ctx.progress("dossier ready", 1.0)
    return result
