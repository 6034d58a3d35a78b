"""Tool declarations for `tools/list`, generated from the registry (nothing written twice)."""

from __future__ import annotations

import functools
from typing import Any

import mcp_types as types
from pydantic import BaseModel

from companion.toolbox import load_tools
from companion.tools import Tool

# Generic guidance appended to every registry description; it depends only on what the
# registry declares about a tool, never on which tool it is.
_READ_ONLY = "Read-only: it reads files inside the workspace roots and changes none of them."
_WRITES = "Writes files inside the workspace roots (enabled by `companion mcp --allow-writes`)."
_RECORDED = (
    "Each run is recorded in the audit store: the result names its record id, readable later "
    "as the resource companion://record/<id>."
)
_VERDICT = (
    "The result text starts with the verdict and the reasons that decided it, each beside its "
    "baseline; report `inconclusive` as undecided, never as either side."
)
_PATHS = "Paths are absolute or relative to the first workspace root and must lie inside a root."


def mcp_name(t: Tool) -> str:
    """The MCP tool name: the registry's wire name (OpenAI-style function names allow no dots)."""
    return t.wire_name


def exposed_tools(allow_writes: bool) -> dict[str, Tool]:
    """The registry tools this server offers, by MCP name; write tools only when enabled."""
    return {mcp_name(t): t for t in load_tools().values() if t.read_only or allow_writes}


def _has_field(model: type[BaseModel], *names: str) -> bool:
    """Whether a result model declares any of these fields."""
    return any(n in model.model_fields for n in names)


def describe(t: Tool) -> str:
    """The registry description plus when-to-use guidance derived from the declaration."""
    parts = [t.description, _READ_ONLY if t.read_only else _WRITES]
    if _has_field(t.output_model, "verdict", "relation"):
        parts.append(_VERDICT)
    if t.record:
        parts.append(_RECORDED)
    parts.append(_PATHS)
    return " ".join(parts)


def _nullable_numbers(node: Any) -> Any:
    """Let every JSON number also be null: NaN and infinities serialise as null."""
    if isinstance(node, dict):
        out = {k: _nullable_numbers(v) for k, v in node.items()}
        if out.get("type") == "number":
            out["type"] = ["number", "null"]
        return out
    if isinstance(node, list):
        return [_nullable_numbers(v) for v in node]
    return node


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a result as it is serialised into `structuredContent`."""
    schema: dict[str, Any] = _nullable_numbers(model.model_json_schema(mode="serialization"))
    return schema


def declaration(t: Tool) -> types.Tool:
    """One `tools/list` entry: schemas from the pydantic models, hints from the registry."""
    title = t.name.replace(".", " ").replace("_", " ")
    return types.Tool(
        name=mcp_name(t),
        title=title,
        description=describe(t),
        # Read-only tools write nothing: their output parameters (report, plot) are not offered.
        input_schema=t.llm_schema(confined=t.read_only)["function"]["parameters"],
        output_schema=output_schema(t.output_model),
        annotations=types.ToolAnnotations(
            title=title,
            read_only_hint=t.read_only,
            destructive_hint=False,
            idempotent_hint=True,  # same arguments, same result: every run is reproducible
            open_world_hint=False,
        ),
    )


@functools.cache
def declarations(allow_writes: bool) -> list[types.Tool]:
    """Every offered tool's declaration, sorted by name (built once: the registry is fixed)."""
    return [declaration(t) for _, t in sorted(exposed_tools(allow_writes).items())]
