"""Demo section: query what the earlier sections recorded in the demo store, and verify one."""

from __future__ import annotations

from pathlib import Path

from companion.store.schemas import QueryResult
from companion.tools import Show, ToolContext

# Preferred record to re-verify: an audit first, then anything else that carries a manifest.
_PREFERENCE = ("audit.compare", "evidence.summarize", "arch.describe", "tokenizer.compare")


def build(workspace: Path) -> None:
    """Nothing to write: this section reads the store the other sections filled."""


def _pick(records: QueryResult) -> str | None:
    """The id of the most interesting verifiable record."""
    for kind in _PREFERENCE:
        for r in records.records:
            if r.kind == kind:
                return r.id
    return records.records[0].id if records.records else None


def _query(ctx: ToolContext) -> QueryResult:
    """The newest records."""
    result = ctx.run("audit.query", {"limit": 20})
    assert isinstance(result, QueryResult)
    return result


def run(workspace: Path, ctx: ToolContext, show: Show) -> None:
    """Show a query, a filtered per-tensor query and a verify of a recorded run."""
    listed = _query(ctx)
    record_id = _pick(listed)
    if record_id is None and ctx.recorder is not None:
        # No earlier section recorded anything: fingerprint a file so there is a record.
        registered = ctx.run("store.register", {"paths": [str(workspace / "README.txt")]})
        record_id = registered.record_id
        listed = _query(ctx)
    show("audit.query: every run recorded in the demo store (newest first)", listed)
    if any(r.kind == "audit.compare" for r in listed.records):
        args = {"kind": "audit.compare", "tensor": "*norm*", "where": ["pearson>0.5"]}
        show(
            "audit.query: audits where a norm tensor has pearson > 0.5",
            ctx.run("audit.query", {**args, "tensor_limit": 5}),
        )
    if record_id is not None:
        show(
            f"store.verify {record_id}: re-hash the inputs and re-run",
            ctx.run("store.verify", {"target": record_id}),
        )
