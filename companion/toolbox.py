"""The assembled registry: every engine's tools, run the one way all front doors share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from companion import files
from companion.architecture import tool as _architecture_tools
from companion.audit import tool as _audit_tools
from companion.case import tool as _case_tools
from companion.convert import guard
from companion.errors import CompanionError, InputError, NotRecordedError
from companion.evidence import tool as _evidence_tools
from companion.fingerprint import tool as _fingerprint_tools
from companion.fleet import tool as _fleet_tools
from companion.settings import Settings
from companion.store import recorder_for
from companion.store import tool as _store_tools
from companion.tools import DECLARED, Tool, ToolContext, ToolResult, get_tool, parse_input
from companion.workspace import tool as _workspace_tools

# Importing an engine's tool module declares its tools; naming them keeps the imports explicit.
ENGINE_TOOL_MODULES = (
    _workspace_tools,
    _store_tools,
    _architecture_tools,
    _audit_tools,
    _evidence_tools,
    _case_tools,
    _fingerprint_tools,
    _fleet_tools,
)


def load_tools() -> dict[str, Tool]:
    """Every declared tool, by registry name."""
    return DECLARED


def run_tool(name: str, raw: object, ctx: ToolContext) -> ToolResult:
    """Validate, run and (when the context has a recorder) record one tool call."""
    t = get_tool(name)
    args = parse_input(t, raw)
    if ctx.runner is None:
        ctx.runner = run_tool  # tools that re-run others (verify, chat context) go through here
    ctx.check_cancelled()
    if ctx.confine and t.read_only:  # write tools (MCP --allow-writes) keep their outputs
        refuse_outputs(t, args)
    access = files.Access(ctx.roots) if ctx.confine else files.UNCONFINED
    hint = f"check the files given to {t.cli}."
    with files.using(access), guard(f"The input of {t.name}", hint, content=False):
        result = t.func(args, ctx)
    if t.record and ctx.recorder is not None:
        try:
            record_id = ctx.recorder(t, args, result)
        except CompanionError as exc:
            # A long computation must not be lost because the store is locked or damaged:
            # the error carries the result so that front doors can still show it.
            raise NotRecordedError(exc, result) from None
        if record_id is not None:
            result = result.model_copy(update={"record_id": record_id})
    return result


def context(settings: Settings, roots: list[Path], **kw: Any) -> ToolContext:
    """The context a front door runs tools in: its settings, roots and the store recorder."""
    return ToolContext(
        settings=settings, roots=roots, recorder=recorder_for(settings), runner=run_tool, **kw
    )


def refuse_outputs(t: Tool, args: BaseModel) -> None:
    """In a confined (LLM/MCP) run of a read-only tool, refuse any output parameter set."""
    given = [f for f in t.output_fields if getattr(args, f, None) not in (None, "", False)]
    if given:
        raise InputError(
            f"{t.name} cannot write files here ({', '.join(given)}): chat tools are read-only.",
            hint="run the command from the CLI to write a report, plot or export.",
        )


def llm_tools() -> list[dict[str, Any]]:
    """Function-calling schemas of the read-only tools, without their output parameters or
    their expert tuning knobs."""
    return [t.llm_schema(confined=True, compact=True) for t in DECLARED.values() if t.read_only]


class SchemaCache:
    """The LLM tool schemas, built once per set of declared tools (JSON schemas are slow)."""

    def __init__(self) -> None:
        self._key: tuple[str, ...] = ()
        self._schemas: list[dict[str, Any]] | None = None

    def get(self) -> list[dict[str, Any]]:
        """The schemas of the read-only tools declared now."""
        key = tuple(sorted(DECLARED))
        if self._schemas is None or key != self._key:
            self._key, self._schemas = key, llm_tools()
        return self._schemas

    def reset(self) -> None:
        """Forget the built schemas."""
        self._schemas = None


LLM_SCHEMAS = SchemaCache()
