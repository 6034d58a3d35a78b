"""`companion export ID`: a self-contained evidence bundle (manifest + full results)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from companion import __version__
from companion.store.record import now_iso
from companion.tools import ToolResult, get_tool

BUNDLE_FORMAT = "companion-evidence-bundle/1"


class ExportInput(BaseModel):
    """Arguments of `store.export`."""

    id: str = Field(description="Record id (from `companion query`), or a unique prefix of it.")
    format: Literal["json", "md"] = Field(default="md", description="Bundle format: json or md.")
    output: str | None = Field(default=None, description="Also write the bundle to this file.")


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
        return bundle_markdown(self.bundle) + note


def _models(conn: sqlite3.Connection, record_id: int) -> list[dict[str, Any]]:
    """The record's models with their files and ArchSpec."""
    models = []
    for m in conn.execute(
        "SELECT m.id, rm.side, m.name, m.path, m.content_sha256, m.arch_spec FROM record_models rm "
        "JOIN models m ON m.id = rm.model_id WHERE rm.record_id = ? ORDER BY rm.side",
        (record_id,),
    ):
        files = conn.execute(
            "SELECT a.path, a.size, a.sha256 FROM record_artifacts ra JOIN artifacts a "
            "ON a.id = ra.artifact_id WHERE ra.record_id = ? AND ra.model_id = ? ORDER BY a.path",
            (record_id, m["id"]),
        ).fetchall()
        models.append(
            {
                "side": m["side"],
                "name": m["name"],
                "path": m["path"],
                "content_sha256": m["content_sha256"],
                "arch_spec": json.loads(m["arch_spec"]) if m["arch_spec"] else None,
                "files": [dict(f) for f in files],
            }
        )
    return models


def build_bundle(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    """Everything about one record, with no reference back to the store."""
    return {
        "format": BUNDLE_FORMAT,
        "id": row["uid"],
        "kind": row["kind"],
        "created": row["created"],
        "verdict": row["verdict"],
        "reasons": json.loads(row["reasons"]),
        "tool": {"name": row["kind"], "version": row["tool_version"]},
        "arguments": json.loads(row["args"]),
        "manifest": json.loads(row["manifest"]) if row["manifest"] else None,
        "models": _models(conn, row["id"]),
        "result": json.loads(row["result"]),
        "how_to_verify": (
            "Check each file in manifest.inputs against its sha256, then run "
            "`companion verify THIS_FILE.json`: it re-hashes the inputs, re-runs "
            "manifest.tool with manifest.parameters and compares every number in `result`."
        ),
        "exported": now_iso(),
        "exported_by": f"companion {__version__}",
    }


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
        lines += [f"- {_reason_text(r)}" for r in bundle["reasons"]]
        lines.append("")
    manifest = bundle.get("manifest") or {}
    if manifest.get("inputs"):
        lines += ["## Inputs", "", "| file | size | sha256 |", "|---|---|---|"]
        lines += [f"| {f['path']} | {f['size']} | `{f['sha256']}` |" for f in manifest["inputs"]]
        lines.append("")
    if bundle["models"]:
        lines += ["## Models", "", "| side | name | content sha256 |", "|---|---|---|"]
        lines += [
            f"| {m['side']} | {m['name']} | `{m['content_sha256']}` |" for m in bundle["models"]
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
