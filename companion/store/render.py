"""Renderings of the store tools' results: query tables (markdown, text, CSV), bundles, reports."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from companion.mdtext import code, inline, inline_path, inline_prose
from companion.store.migrations import METRIC_COLUMNS
from companion.tools import get_tool

if TYPE_CHECKING:
    from companion.store.schemas import (
        CheckResult,
        MigrateResult,
        QueryResult,
        RegisterResult,
        TensorHit,
        VerifyResult,
    )


def query_md(r: QueryResult) -> str:
    """A markdown table, with matching tensors listed under each record."""
    lines = ["# Audit store query", ""]
    if r.records:
        # Narrow enough for an 80-column terminal: the id must stay whole (users type it).
        lines += ["| id | kind | verdict | models | created |", "|---|---|---|---|---|"]
        for rec in r.records:
            cells = [rec.id, rec.kind, rec.verdict or "", rec.models_text(), rec.when()]
            lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        reasons = [f"- `{x.id}`: {_md_cell(x.first_reason(100))}" for x in r.records]
        lines += ["", "First reasons:", "", *(x for x in reasons if not x.endswith(": "))]
        for rec in r.records:
            if rec.tensors:
                lines += ["", f"## {rec.id}: {rec.tensor_matches} matching tensors", ""]
                lines += _tensor_md(rec.tensors)
    lines += ["", query_footer(r)]
    return "\n".join(lines)


def query_table(r: QueryResult) -> str:
    """Aligned plain-text columns."""
    header = ["id", "created", "kind", "verdict", "models", "reason"]
    rows = [
        [rec.id, rec.when(), rec.kind, rec.verdict or "", rec.models_text(), rec.first_reason()]
        for rec in r.records
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    out = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join([*(line.rstrip() for line in out), query_footer(r)])


def query_csv(r: QueryResult) -> str:
    """One CSV row per record, or per matching tensor when tensor filters were given."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    base = ["id", "created", "kind", "verdict", "models"]
    tensor_cols = ["name_a", "name_b", "role", "layer", *METRIC_COLUMNS]
    with_tensors = any(rec.tensors for rec in r.records)
    writer.writerow(base + (tensor_cols if with_tensors else ["reason"]))
    for rec in r.records:
        head = [rec.id, rec.created, rec.kind, rec.verdict or "", rec.models_text()]
        if not with_tensors:
            writer.writerow([*head, rec.first_reason(width=100_000)])
        for t in rec.tensors:
            writer.writerow(head + ["" if (v := getattr(t, c)) is None else v for c in tensor_cols])
    return buf.getvalue()


def query_footer(r: QueryResult) -> str:
    """`records 1-50 of 1234`."""
    if not r.records:
        return f"No records match (store: {r.store})."
    end = r.offset + len(r.records)
    more = "+" if r.total_capped else ""
    return f"Records {r.offset + 1}-{end} of {r.total}{more} (store: {r.store})."


def _md_cell(value: object) -> str:
    """A stored value (a path, a model name, a reason quoting a file) as inert cell text."""
    return inline_path(value)


def _fmt(value: float | None) -> str:
    """A metric for display."""
    return "" if value is None else f"{value:.4g}"


def _tensor_md(tensors: list[TensorHit]) -> list[str]:
    """Markdown rows for per-tensor hits."""
    lines = ["| tensor | role | layer | " + " | ".join(METRIC_COLUMNS) + " |"]
    lines.append("|---" * (3 + len(METRIC_COLUMNS)) + "|")
    for t in tensors:
        name = t.name_a if t.name_a == t.name_b or not t.name_b else f"{t.name_a} ~ {t.name_b}"
        cells = [name or "", t.role or "", "" if t.layer is None else str(t.layer)]
        cells += [_fmt(getattr(t, m)) for m in METRIC_COLUMNS]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return lines


def _tool_markdown(kind: str, result: dict[str, Any]) -> str | None:
    """The recording tool's own markdown rendering of the result, if it can still read it."""
    try:
        model = get_tool(kind).output_model.model_validate(result)
    except (ValidationError, Exception):  # an old or foreign result: fall back to JSON
        return None
    return model.to_markdown()


def _reason_text(reason: Any) -> str:
    """A reason as one line: its statement when it has one."""
    if isinstance(reason, dict) and isinstance(reason.get("statement"), str):
        return str(reason["statement"])
    return reason if isinstance(reason, str) else json.dumps(reason)


def bundle_markdown(bundle: dict[str, Any]) -> str:
    """A readable evidence bundle: outcome, inputs with hashes, parameters, full results."""
    lines = [f"# Evidence bundle {bundle['id']}: {bundle['kind']}", ""]
    lines += [
        f"- Verdict: **{bundle['verdict'] or 'n/a'}**",
        f"- Recorded: {bundle['created']} by companion {bundle['tool']['version'] or '?'}",
        f"- Exported: {bundle['exported']} by {bundle['exported_by']}",
        "",
    ]
    if bundle["reasons"]:
        lines += ["## Reasons", ""]
        lines += [f"- {inline_prose(_reason_text(r))}" for r in bundle["reasons"]]
        lines.append("")
    manifest = bundle.get("manifest") or {}
    if manifest.get("inputs"):
        lines += ["## Inputs", "", "| file | size | sha256 |", "|---|---|---|"]
        lines += [
            f"| {_md_cell(f['path'])} | {f['size']} | `{f['sha256']}` |" for f in manifest["inputs"]
        ]
        lines.append("")
    if bundle["models"]:
        lines += ["## Models", "", "| side | name | content sha256 |", "|---|---|---|"]
        lines += [
            f"| {m['side']} | {_md_cell(m['name'])} | `{m['content_sha256']}` |"
            for m in bundle["models"]
        ]
        lines.append("")
    lines += ["## Parameters", "", "```json", json.dumps(bundle["arguments"], indent=2), "```", ""]
    rendered = _tool_markdown(bundle["kind"], bundle["result"])
    if rendered:
        demoted = ("##" + ln if ln.startswith("#") else ln for ln in rendered.splitlines())
        lines += ["## Result", "", *demoted, ""]
    lines += ["## How to verify", "", bundle["how_to_verify"], ""]
    lines += ["## Full result (JSON)", "", "```json", json.dumps(bundle["result"], indent=2), "```"]
    return "\n".join(lines)


def check_markdown(r: CheckResult) -> str:
    """Status, problems, counts and advice."""
    lines = [f"# Store check: {r.status}", "", f"File: `{r.path}` ({r.size_bytes} B"]
    lines[-1] += f", WAL {r.wal_bytes} B)"
    if r.problems:
        lines += ["", "Problems:", *(f"- {p}" for p in r.problems[:20])]
    if r.counts:
        lines += ["", "| table | rows |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in r.counts.items()]
    if r.migrations:
        lines += ["", f"Schema: {', '.join(r.migrations)}"]
    lines += ["", f"**Next step:** {r.advice}"]
    return "\n".join(lines)


def migrate_markdown(r: MigrateResult) -> str:
    """The copied tables, each verified by row count and checksum."""
    lines = [f"# Store copied: {r.source} -> {r.target}", "", "| table | rows | sha256 |"]
    lines.append("|---|---|---|")
    lines += [f"| {t.table} | {t.rows} | `{t.sha256[:16]}` |" for t in r.tables]
    lines += ["", "Counts and checksums agree on both sides for every table.", ""]
    lines.append(f"**Next step:** set `COMPANION_STORE_URL={r.target}` (or `store_url`).")
    return "\n".join(lines)


def verify_markdown(r: VerifyResult) -> str:
    """A short report: outcome, file checks, differing values."""
    icon = "✅" if r.status == "reproduced" else "❌"
    lines = [f"# Verify {r.record_id or r.target}: {icon} {r.status}", ""]
    lines.append(
        f"Re-ran `{r.tool}` (recorded with companion {r.recorded_version or '?'}, "
        f"now {r.current_version}); compared {r.values_compared} values with "
        f"tolerance {r.tolerance}."
    )
    if r.rerun_error:
        lines += ["", f"The re-run failed: {r.rerun_error}"]
    lines += ["", "| file | status | recorded sha256 | now |", "|---|---|---|---|"]
    for f in r.files:
        now = f.actual_sha256[:16] if f.actual_sha256 else "-"
        lines.append(f"| {_md_cell(f.path)} | {f.status} | `{f.expected_sha256[:16]}` | `{now}` |")
    notes = [
        f"- {_md_cell(f.path)}: {f.status}, {_md_cell(f.reason)}." for f in r.files if f.reason
    ]
    if notes:
        lines += ["", "Remote inputs (recorded ranges re-fetched from the server):", "", *notes]
    if r.differences:
        lines += ["", f"## {r.n_differences} differing values", ""]
        lines += ["| where | recorded | re-computed |", "|---|---|---|"]
        for d in r.differences:
            lines.append(
                f"| {code(d.where, cell=True)} | {_short(d.expected)} | {_short(d.actual)} |"
            )
        if r.n_differences > len(r.differences):
            lines.append(f"\n… and {r.n_differences - len(r.differences)} more.")
    return "\n".join(lines)


def register_markdown(r: RegisterResult) -> str:
    """A table of hashed files."""
    lines = [f"# Registered {r.files} files ({r.total_bytes} bytes)", ""]
    lines += ["| file | size | sha256 |", "|---|---|---|"]
    lines += [f"| {_md_cell(f.path)} | {f.size} | `{f.sha256}` |" for f in r.manifest.inputs]
    if r.record_id:
        lines += ["", f"Record `{r.record_id}`: `companion verify {r.record_id}`."]
    return "\n".join(lines)


def _short(value: Any) -> str:
    """A compact rendering of a JSON value for a table cell."""
    text = json.dumps(value)
    return inline(text if len(text) <= 60 else text[:57] + "...")
