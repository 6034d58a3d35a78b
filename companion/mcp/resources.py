"""Recorded audits and evidence summaries as resources `companion://record/<id>`.

Both handlers go through the registry's store tools (`audit.query`, `store.export`), so the
store's SQL lives in one place.
"""

from __future__ import annotations

import re

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS

from companion.errors import CompanionError
from companion.settings import Settings
from companion.store.schemas import QueryResult, RecordSummary
from companion.toolbox import context, run_tool

SCHEME = "companion://record/"
PAGE = 100
RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for an unknown resource
_URI = re.compile(r"^companion://record/([0-9a-f]{4,64})$")
TEMPLATE = types.ResourceTemplate(
    name="record",
    title="Recorded companion result",
    uri_template=SCHEME + "{id}",
    description="A recorded audit, evidence summary, architecture or tokenizer result: "
    "verdict, reasons, input hashes, parameters and the full result, as an evidence bundle.",
    mime_type="text/markdown",
)


def _resource(r: RecordSummary) -> types.Resource:
    """One record as a listed resource (its verdict and first reason in the description)."""
    verdict = f" → {r.verdict}" if r.verdict else ""
    models = r.models_text()
    return types.Resource(
        uri=SCHEME + r.id,
        name=f"{r.kind} {r.id[:8]}",
        title=f"{r.kind}{verdict}" + (f" ({models})" if models else ""),
        description=f"Recorded {r.when()}. {r.first_reason(200)}".strip(),
        mime_type="text/markdown",
    )


def _page(settings: Settings, offset: int) -> QueryResult:
    """One page of records, newest first."""
    result = run_tool("audit.query", {"limit": PAGE, "offset": offset}, context(settings, []))
    if not isinstance(result, QueryResult):
        raise TypeError(f"audit.query returned {type(result).__name__}")
    return result


async def list_records(settings: Settings, cursor: str | None) -> types.ListResourcesResult:
    """Recorded results, newest first, paginated by offset cursors."""
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    try:
        page = await anyio.to_thread.run_sync(_page, settings, offset)
    except CompanionError:  # no usable store: nothing recorded to list
        return types.ListResourcesResult(resources=[])
    nxt = offset + len(page.records)
    more = nxt < page.total
    return types.ListResourcesResult(
        resources=[_resource(r) for r in page.records], next_cursor=str(nxt) if more else None
    )


def _bundle(settings: Settings, record_id: str) -> str:
    """The record's evidence bundle as markdown."""
    result = run_tool("store.export", {"id": record_id, "format": "md"}, context(settings, []))
    return result.to_markdown()


async def read_record(settings: Settings, uri: str) -> types.ReadResourceResult:
    """The evidence bundle of one record; unknown ids are a resource-not-found error."""
    match = _URI.match(uri)
    if match is None:
        raise MCPError(
            INVALID_PARAMS,
            f"Not a companion record URI: {uri!r}. Next step: use {SCHEME}<id> from "
            "resources/list.",
        )
    try:
        text = await anyio.to_thread.run_sync(_bundle, settings, match.group(1))
    except CompanionError as exc:
        raise MCPError(RESOURCE_NOT_FOUND, exc.text, {"uri": uri}) from None
    contents = types.TextResourceContents(uri=uri, mime_type="text/markdown", text=text)
    return types.ReadResourceResult(contents=[contents])
