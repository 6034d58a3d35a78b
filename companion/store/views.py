"""What queries return, and its renderings: markdown, plain-text table, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from companion.store.migrations import METRIC_COLUMNS
from companion.tools import ToolResult

Format = Literal["table", "json", "csv", "md"]


class ModelRef(BaseModel):
    """A model a record involves, and which argument named it (a, b, paths...)."""

    side: str
    name: str
    path: str
    content_sha256: str


class TensorHit(BaseModel):
    """One per-tensor result row that matched the tensor filters."""

    name_a: str | None = None
    name_b: str | None = None
    role: str | None = None
    layer: int | None = None
    cosine: float | None = None
    pearson: float | None = None
    spearman: float | None = None
    rel_l2: float | None = None
    z: float | None = None
    p: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class RecordSummary(BaseModel):
    """One recorded run: the id that `companion verify`/`export` accept, plus its outcome."""

    id: str
    kind: str
    created: str
    verdict: str | None = None
    reasons: list[Any] = Field(default_factory=list)
    models: list[ModelRef] = Field(default_factory=list)
    tool_version: str | None = None
    n_tensors: int | None = None
    tensor_matches: int | None = Field(
        default=None, description="Per-tensor rows matching the tensor filters (if any)."
    )
    tensors: list[TensorHit] = Field(default_factory=list)

    def models_text(self) -> str:
        """`A vs B` for a pair, else the model names."""
        sides = {m.side: m.name for m in self.models}
        if {"a", "b"} <= set(sides):
            return f"{sides['a']} vs {sides['b']}"
        return ", ".join(m.name for m in self.models)

    def first_reason(self, width: int = 60) -> str:
        """The first reason, as short text."""
        if not self.reasons:
            return ""
        r = self.reasons[0]
        if isinstance(r, dict):
            r = next((r[k] for k in ("statement", "text") if isinstance(r.get(k), str)), r)
        text = r if isinstance(r, str) else json.dumps(r)
        return text if len(text) <= width else text[: width - 1] + "…"

    def when(self) -> str:
        """Creation time to the minute, for tables."""
        return self.created[:16].replace("T", " ")


class QueryResult(ToolResult):
    """A page of records, newest first unless sorted otherwise."""

    records: list[RecordSummary]
    total: int = Field(description="Records matching the filters (capped, see total_capped).")
    total_capped: bool = False
    offset: int = 0
    limit: int = 50
    format: Format = "md"
    store: str = ""

    def to_json(self) -> str:
        """The CLI `--json` output: a JSON list of records, each with its `id`."""
        return json.dumps([r.model_dump(mode="json") for r in self.records], indent=2)

    def to_markdown(self) -> str:
        """The rendering the `format` argument asked for."""
        if self.format == "json":
            return "```json\n" + self.to_json() + "\n```"
        if self.format == "csv":
            return "```csv\n" + self.to_csv() + "```"
        if self.format == "table":
            return "```text\n" + self.to_table() + "\n```"
        return self.to_md()

    def to_text(self) -> str | None:
        """Raw CLI output for machine formats (csv, json, table); None means render markdown."""
        if self.format == "json":
            return self.to_json()
        if self.format == "csv":
            return self.to_csv()
        if self.format == "table":
            return self.to_table()
        return None

    def _footer(self) -> str:
        """`records 1-50 of 1234`."""
        if not self.records:
            return f"No records match (store: {self.store})."
        end = self.offset + len(self.records)
        more = "+" if self.total_capped else ""
        return f"Records {self.offset + 1}-{end} of {self.total}{more} (store: {self.store})."

    def to_md(self) -> str:
        """A markdown table, with matching tensors listed under each record."""
        lines = ["# Audit store query", ""]
        if self.records:
            # Narrow enough for an 80-column terminal: the id must stay whole (users type it).
            lines += ["| id | kind | verdict | models | created |", "|---|---|---|---|---|"]
            for r in self.records:
                cells = [r.id, r.kind, r.verdict or "", r.models_text(), r.when()]
                lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
            reasons = [f"- `{r.id}`: {_md_cell(r.first_reason(100))}" for r in self.records]
            lines += ["", "First reasons:", "", *(x for x in reasons if not x.endswith(": "))]
            for r in self.records:
                if r.tensors:
                    lines += ["", f"## {r.id}: {r.tensor_matches} matching tensors", ""]
                    lines += _tensor_md(r.tensors)
        lines += ["", self._footer()]
        return "\n".join(lines)

    def to_table(self) -> str:
        """Aligned plain-text columns."""
        header = ["id", "created", "kind", "verdict", "models", "reason"]
        rows = [
            [r.id, r.when(), r.kind, r.verdict or "", r.models_text(), r.first_reason()]
            for r in self.records
        ]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
        out = [
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
            for row in [header, *rows]
        ]
        return "\n".join([*(line.rstrip() for line in out), self._footer()])

    def to_csv(self) -> str:
        """One CSV row per record, or per matching tensor when tensor filters were given."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        base = ["id", "created", "kind", "verdict", "models"]
        tensor_cols = ["name_a", "name_b", "role", "layer", *METRIC_COLUMNS]
        with_tensors = any(r.tensors for r in self.records)
        writer.writerow(base + (tensor_cols if with_tensors else ["reason"]))
        for r in self.records:
            head = [r.id, r.created, r.kind, r.verdict or "", r.models_text()]
            if not with_tensors:
                writer.writerow([*head, r.first_reason(width=100_000)])
            for t in r.tensors:
                writer.writerow(
                    head + ["" if (v := getattr(t, c)) is None else v for c in tensor_cols]
                )
        return buf.getvalue()


def _md_cell(value: object) -> str:
    """Escape a markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


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
