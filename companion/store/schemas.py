"""Input and result schemas of the store tools (query, export, verify, check, register)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator

from companion import __version__
from companion.manifest import Manifest
from companion.model import Model
from companion.store.migrations import METRIC_COLUMNS
from companion.tools import EXPERT, ToolResult

Format = Literal["table", "json", "csv", "md"]
Status = Literal["ok", "missing", "foreign", "corrupt", "newer"]


def _split(value: Any) -> Any:
    """Accept `a,b` strings as lists (the CLI passes strings)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return [p.strip() for v in value for p in str(v).split(",") if p.strip()]
    return value


class ModelRef(Model):
    """A model a record involves, and which argument named it (a, b, paths...)."""

    side: str
    name: str
    path: str
    content_sha256: str


class TensorHit(Model):
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


class RecordSummary(Model):
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

    def to_md(self) -> str:
        """A markdown table, with matching tensors listed under each record."""
        from companion.store import render

        return render.query_md(self)

    def to_table(self) -> str:
        """Aligned plain-text columns."""
        from companion.store import render

        return render.query_table(self)

    def to_csv(self) -> str:
        """One CSV row per record, or per matching tensor when tensor filters were given."""
        from companion.store import render

        return render.query_csv(self)


class QueryInput(Model):
    """Arguments of `audit.query`."""

    model: list[str] = Field(
        default_factory=list,
        description="Model name, path, or sha256 prefix (>= 6 hex digits); any listed matches.",
    )
    pair: list[str] = Field(
        default_factory=list, description="Two models (name, path or sha): runs involving both."
    )
    verdict: list[str] = Field(
        default_factory=list,
        description="Verdicts to keep: derived, independent, inconclusive (audits), "
        "from_scratch, warm_start (evidence), same, extended, unrelated (tokenizers).",
    )
    kind: list[str] = Field(
        default_factory=list,
        description="Tool names to keep, globs allowed (audit.compare, evidence.*, arch.*).",
    )
    tensor: str | None = Field(default=None, description="Tensor name glob, e.g. '*.norm.weight'.")
    role: list[str] = Field(
        default_factory=list,
        description="Tensor roles (norm, q, k, v, o, up, gate, down, embedding...) or audit "
        "groups (attn, mlp) that stand for their roles.",
    )
    where: list[str] = Field(
        default_factory=list,
        description="Per-tensor metric thresholds such as 'pearson>0.5' or 'z<=-3'. Indexed "
        f"metrics: {', '.join(METRIC_COLUMNS)}; other names are looked up in the row's extras.",
    )
    since: str | None = Field(
        default=None, description="Recorded at or after: ISO date/time, or 7d / 12h / 30m ago."
    )
    until: str | None = Field(
        default=None, description="Recorded before: ISO date/time (a date includes that day)."
    )
    sort: Literal["newest", "oldest", "kind", "verdict"] = Field(
        json_schema_extra=EXPERT, default="newest", description="Order of the records."
    )
    limit: int = Field(default=50, ge=1, le=1000, description="Records per page.")
    offset: int = Field(
        json_schema_extra=EXPERT, default=0, ge=0, description="Records to skip (pagination)."
    )
    tensor_limit: int = Field(
        json_schema_extra=EXPERT,
        default=20,
        ge=0,
        le=1000,
        description="Matching tensors listed per record.",
    )
    format: Format = Field(default="md", description="Rendering: table, json, csv or md.")

    _lists = field_validator("model", "pair", "verdict", "kind", "role", "where", mode="before")(
        _split
    )

    @field_validator("pair")
    @classmethod
    def _two(cls, value: list[str]) -> list[str]:
        """A pair is exactly two models."""
        if value and len(value) != 2:
            raise ValueError("give exactly two models, e.g. --pair base-7b,finetune-7b")
        return value


class ExportInput(Model):
    """Arguments of `store.export`."""

    id: str = Field(description="Record id (from `companion query`), or a unique prefix of it.")
    format: Literal["json", "md"] = Field(default="md", description="Bundle format: json or md.")
    output: str | None = Field(default=None, description="Also write the bundle to this file.")
    overwrite: bool = Field(
        default=False, description="Replace an existing output file (asked for on the CLI)."
    )


class ExportResult(ToolResult):
    """An evidence bundle a third party can read and `companion verify`."""

    id: str
    format: Literal["json", "md"]
    bundle: dict[str, Any]
    written: str | None = None

    def to_json(self) -> str:
        """The bundle itself (what `companion verify BUNDLE.json` accepts)."""
        return json.dumps(self.bundle, indent=2)

    def to_markdown(self) -> str:
        """The bundle as markdown (or its JSON in a code block)."""
        note = f"\n\nWritten to `{self.written}`." if self.written else ""
        if self.format == "json":
            return "```json\n" + self.to_json() + "\n```" + note
        from companion.store.render import bundle_markdown

        return bundle_markdown(self.bundle) + note


class CheckInput(Model):
    """Arguments of `store.check`."""

    path: str | None = Field(default=None, description="Store file; default: the configured one.")


class CheckResult(ToolResult):
    """The state of a store file and the next step."""

    path: str
    status: Status
    problems: list[str] = Field(default_factory=list)
    migrations: list[str] = Field(default_factory=list)
    pending_migrations: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    size_bytes: int = 0
    wal_bytes: int = 0
    advice: str = ""

    def to_markdown(self) -> str:
        """Status, problems, counts and advice."""
        from companion.store import render

        return render.check_markdown(self)


class VerifyInput(Model):
    """Arguments of `store.verify`."""

    target: str = Field(
        description="Record id, or a JSON file: an exported bundle, a saved result (--json), "
        "or a bare manifest (matched to its recorded result in the store)."
    )
    rtol: float = Field(default=1e-6, ge=0, le=1, description="Relative float tolerance.")
    atol: float = Field(default=1e-9, ge=0, le=1, description="Absolute float tolerance.")


class FileCheck(Model):
    """One recorded input file, re-hashed."""

    path: str
    status: Literal["ok", "changed", "missing"]
    expected_sha256: str
    actual_sha256: str | None = None
    expected_size: int
    actual_size: int | None = None
    remote: bool = False  # a URL: sha256 is its ETag; the recorded ranges were re-fetched
    reason: str | None = None  # why a remote input is ok, changed or missing


class Difference(Model):
    """One value that differs between the recorded and the re-computed result."""

    where: str
    expected: Any = None
    actual: Any = None


class VerifyResult(ToolResult):
    """`reproduced`, or `mismatch` with exactly which files and numbers differ."""

    target: str
    record_id: str | None = None
    tool: str
    status: Literal["reproduced", "mismatch"]
    tolerance: str
    recorded_version: str | None = None
    current_version: str = __version__
    files: list[FileCheck] = Field(default_factory=list)
    values_compared: int = 0
    n_differences: int = 0
    differences: list[Difference] = Field(default_factory=list)
    rerun_error: str | None = None

    def to_markdown(self) -> str:
        """A short report: outcome, file checks, differing values."""
        from companion.store import render

        return render.verify_markdown(self)


class RegisterInput(Model):
    """Arguments of `store.register`."""

    paths: list[str] = Field(description="Model files or folders to fingerprint.")

    @field_validator("paths", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """Accept a single path string."""
        return [value] if isinstance(value, str) else value


class RegisterResult(ToolResult):
    """The recorded fingerprint (sha256 and size of every file) of one or more models."""

    files: int
    total_bytes: int
    manifest: Manifest
    record_id: str | None = None

    def to_markdown(self) -> str:
        """A table of hashed files."""
        from companion.store import render

        return render.register_markdown(self)


class MigrateInput(Model):
    """Arguments of `store.migrate_to`."""

    url: str = Field(
        pattern=r"^postgres(ql)?://",
        description="The PostgreSQL store to fill: postgresql://user@host/db, an empty database.",
    )
    source: str | None = Field(
        default=None, description="SQLite store file to copy; default: the configured one."
    )


class TableCopy(Model):
    """One copied table: rows and the checksum both stores agree on."""

    table: str
    rows: int
    sha256: str


class MigrateResult(ToolResult):
    """An SQLite store copied into PostgreSQL, verified table by table."""

    source: str
    target: str
    tables: list[TableCopy]

    def to_markdown(self) -> str:
        """The copied tables with their row counts and checksums."""
        from companion.store import render

        return render.migrate_markdown(self)
