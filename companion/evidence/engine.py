"""Summarize: parse the logs, resolve V, run every analysis, decide, plot."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from companion.errors import InputError
from companion.evidence import analysis, anomalies, bounds, windows
from companion.evidence.detect import read_log
from companion.evidence.runs import split_runs
from companion.evidence.schemas import (
    EvidenceSummary,
    Finding,
    ParseReport,
    Reason,
    RunPart,
    Verdict,
)
from companion.evidence.series import ParsedLog
from companion.evidence.verdict import decide
from companion.evidence.vocab import Vocab, find_beside, vocab_from_file
from companion.jobs import Job
from companion.manifest import Manifest

CONFIG_NAMES = {"config.json", "tokenizer.json"}


@dataclass
class Request:
    """Resolved inputs of one summary."""

    paths: list[Path]
    vocab_size: int | None = None
    config: Path | None = None
    claimed_tokens: float | None = None
    plot: Path | None = None
    vocab_search: int = 2


def merge(logs: list[ParsedLog]) -> ParsedLog:
    """Several logs of one run (resumed segments, in the order given) as one."""
    out = logs[0]
    for other in logs[1:]:
        out.series = out.series.concat(other.series)
        out.files += other.files
        out.records += other.records
        out.unparseable += other.unparseable
        out.skipped_iterations += other.skipped_iterations
        out.nan_iterations += other.nan_iterations
        out.eval_points += other.eval_points
        out.notes += other.notes
        out.used += other.used
        out.skipped += other.skipped
        out.grad_norms += other.grad_norms
        out.vocab = out.vocab or other.vocab
        out.vocab_source = out.vocab_source or other.vocab_source
        if other.format != out.format and other.format not in out.format.split("+"):
            out.format += "+" + other.format
    return out


def resolve_vocab(req: Request, log: ParsedLog) -> Vocab | None:
    """V from --vocab-size, --config, a config/tokenizer beside the log, or the log itself."""
    if req.vocab_size is not None:
        return Vocab(req.vocab_size, "--vocab-size")
    if req.config is not None:
        return vocab_from_file(req.config)
    for p in req.paths:
        if (found := find_beside(p, req.vocab_search)) is not None:
            return found
    if log.vocab is not None:
        return Vocab(log.vocab, log.vocab_source)
    return None


def summarize(
    req: Request, job: Job, manifest: Callable[[list[Path]], Manifest]
) -> EvidenceSummary:
    """The whole pipeline; `manifest` hashes the inputs once parsing is done."""
    logs = []
    for i, p in enumerate(req.paths):
        job.report(f"reading {p.name}", i / max(1, len(req.paths)))
        logs.append(read_log(p, job.check))
    log = merge(logs)
    job.check()
    job.report("analysing")
    vocab = resolve_vocab(req, log)
    ln_v = math.log(vocab.size) if vocab is not None else None
    parts = split_runs(log)
    findings, first = _findings(parts[0], ln_v, req.claimed_tokens)
    verdict, reasons = decide(findings, ln_v)
    reasons += bounds.caveats(verdict, findings)
    runs = _runs(parts, ln_v, req.claimed_tokens, first, verdict, reasons) if len(parts) > 1 else []
    if runs and len({r.verdict for r in runs}) > 1:
        verdict = "inconclusive"
        reasons.insert(0, Reason(text="The runs in this file disagree: " + _run_text(runs)))
    elif runs:
        reasons.append(Reason(text=f"The file holds {len(runs)} runs: " + _run_text(runs)))
    s = parts[0].series
    finite = np.isfinite(s.loss)
    seen, _how = anomalies.tokens_seen(log)
    last = int(np.flatnonzero(finite)[-1]) if finite.any() else None
    inputs = list(log.files) + ([vocab.file] if vocab is not None and vocab.file else [])
    summary = EvidenceSummary(
        verdict=verdict,
        format=log.format,
        metric=log.metric,
        files=[str(f) for f in log.files],
        first_step=first.step if first else None,
        first_loss=first.loss if first else None,
        first_lr=first.lr if first and math.isfinite(first.lr) else None,
        window=first.window if first else None,
        window_kind=log.window_kind,
        last_step=float(s.step[last]) if last is not None else None,
        last_loss=float(s.loss[last]) if last is not None else None,
        min_loss=float(np.min(s.loss[finite])) if finite.any() else None,
        vocab_size=vocab.size if vocab else None,
        vocab_source=vocab.source if vocab else None,
        vocab_file=str(vocab.file) if vocab is not None and vocab.file else None,
        ln_vocab=ln_v,
        tokens_seen=seen,
        claimed_tokens=req.claimed_tokens,
        reasons=reasons,
        findings=findings,
        parse=_report(log),
        runs=runs,
        manifest=manifest(inputs),
    )
    if req.plot is not None:
        from companion.evidence.plot import plot_summary

        job.report("plotting")
        png, svg = plot_summary(log, summary, req.plot)
        summary.plot_png, summary.plot_svg = str(png), str(svg)
    return summary


def _findings(
    log: ParsedLog, ln_v: float | None, claimed: float | None
) -> tuple[list[Finding], analysis.First | None]:
    """Every analysis, in reading order."""
    negative = bounds.negative_losses(log)
    first = analysis.first_value(log)
    if first is None:
        raise InputError(
            f"{log.files[0]}: all {len(log.series)} loss values are NaN or inf.",
            hint="the run diverged from the start; check the log or pass another segment.",
        )
    out: list[Finding] = []
    warm, near_zero = analysis.warmup(log, first)
    out.append(analysis.initial_loss(first, ln_v, near_zero))
    if (window := windows.window_mean(first, ln_v)) is not None:
        out.append(window)
    if (ev := analysis.initial_eval(log, first, ln_v)) is not None:
        out.append(ev)
    out.append(warm)
    for extra in (
        analysis.fall_rate(log, first, ln_v),
        analysis.below_four(log, ln_v),
        anomalies.resumes(log),
        anomalies.spikes(log),
        anomalies.nonfinite(log),
        anomalies.budget(log, claimed),
        bounds.fresh_head(log, first, ln_v),
    ):
        if extra is not None:
            out.append(extra)
    if (weak := bounds.eval_only(log, out)) is not None:
        out.append(weak)
    if negative is not None:
        out.append(negative)
    if log.unparseable:
        lines = ", ".join(map(str, log.unparseable_lines[:5]))
        out.append(
            Finding(
                name="unparseable",
                direction="neutral",
                strength="info",
                message=f"{log.unparseable} unparseable line(s) or record(s) skipped"
                + (f" (first at line {lines})" if lines else "")
                + ".",
                figures={"count": log.unparseable},
            )
        )
    return out, first


def _runs(
    parts: list[ParsedLog],
    ln_v: float | None,
    claimed: float | None,
    first: analysis.First | None,
    verdict: Verdict,
    reasons: list[Reason],
) -> list[RunPart]:
    """Judge each run of a multi-run file on its own (the first is already judged)."""
    out = []
    for k, part in enumerate(parts):
        if k == 0:
            v, rs, f = verdict, reasons, first
        else:
            try:
                found, f = _findings(part, ln_v, claimed)
            except InputError:
                continue
            v, rs = decide(found, ln_v)
        s = part.series
        out.append(
            RunPart(
                index=k + 1,
                values=len(s),
                first_step=f.step if f else None,
                first_loss=f.loss if f else None,
                last_step=float(s.step[-1]) if len(s) else None,
                last_loss=float(s.loss[-1]) if len(s) else None,
                verdict=v,
                reason=rs[0].text if rs else "",
            )
        )
    return out


def _run_text(runs: list[RunPart]) -> str:
    """'run 1 (steps 1–500, first loss 10.8): from_scratch; run 2 ...'."""
    return (
        "; ".join(
            f"run {r.index} (first loss {r.first_loss:.3f} at step {r.first_step:g}, "
            f"{r.values} values): {r.verdict}"
            if r.first_loss is not None and r.first_step is not None
            else f"run {r.index}: {r.verdict}"
            for r in runs
        )
        + "."
    )


def _report(log: ParsedLog) -> ParseReport:
    """Parser statistics for the summary."""
    s = log.series
    return ParseReport(
        records=log.records,
        values=len(s),
        unparseable=log.unparseable,
        unparseable_lines=log.unparseable_lines[:20],
        nonfinite=int(np.count_nonzero(~np.isfinite(s.loss))),
        nonfinite_lines=log.nonfinite_lines[:20],
        skipped_iterations=log.skipped_iterations,
        nan_iterations=log.nan_iterations,
        first_line=log.first_line,
        used_lines=log.used,
        used_line_refs=log.used_lines[:20],
        skipped_lines=log.skipped,
        skipped_line_refs=log.skipped_lines[:20],
        notes=log.notes[:20],
    )
