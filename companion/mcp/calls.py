"""`tools/call`: validate, run the registry tool in a worker thread, stream progress, cancel."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.session import ServerSession
from pydantic import BaseModel

from companion.errors import CompanionError, InputError, NotRecordedError
from companion.mcp.schema import exposed_tools
from companion.settings import Settings
from companion.toolbox import context, run_tool
from companion.tools import Recorder, Tool, ToolContext, ToolResult, parse_input

log = logging.getLogger("companion.mcp")


@dataclass
class CallOptions:
    """What every call shares: settings and whether write tools are on."""

    settings: Settings = field(default_factory=Settings)
    allow_writes: bool = False


def text_result(text: str, *, error: bool = False, data: Any = None) -> types.CallToolResult:
    """A tool result holding one text block (and structured content when given)."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=data,
        is_error=error,
    )


def error_result(exc: CompanionError) -> types.CallToolResult:
    """A CompanionError as `isError` text: what went wrong, then the next step."""
    return text_result(f"companion: {exc.text}", error=True)


def find_tool(name: str, options: CallOptions) -> Tool:
    """The offered tool of this MCP name, or an InputError naming the next step."""
    tools = exposed_tools(allow_writes=True)
    t = tools.get(name)
    if t is None:
        offered = ", ".join(sorted(exposed_tools(options.allow_writes)))
        raise InputError(f"Unknown tool {name!r}.", hint=f"call tools/list; tools: {offered}.")
    if not t.read_only and not options.allow_writes:
        raise InputError(
            f"Tool {name} writes files and write tools are off.",
            hint="restart the server as `companion mcp --allow-writes` to enable them.",
        )
    return t


def check_arguments(t: Tool, name: str, raw: object) -> None:
    """Validate arguments up front so the next step speaks of the MCP schema, not the CLI."""
    try:
        parse_input(t, raw)
    except InputError as exc:
        raise InputError(
            exc.message, hint=f"send arguments matching the inputSchema of {name} (tools/list)."
        ) from None


def success_result(result: ToolResult) -> types.CallToolResult:
    """Markdown for the model (verdict and reasons first) plus the typed result."""
    text = result.to_markdown()
    record_id = result.record_id
    if record_id and f"companion://record/{record_id}" not in text:
        text += f"\n\nResource: `companion://record/{record_id}`."
    return text_result(text, data=json.loads(result.model_dump_json()))


class ProgressPump:
    """Carries progress from the worker thread to `notifications/progress`, in order."""

    def __init__(self, session: ServerSession) -> None:
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, float | None]] = asyncio.Queue()
        self.sent = -0.01

    def report(self, message: str, fraction: float | None) -> None:
        """The ToolContext progress callback (called on the worker thread)."""
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (message, fraction))

    async def run(self) -> None:
        """Send queued reports until cancelled; progress values only ever increase."""
        while True:
            message, fraction = await self.queue.get()
            value = 100.0 * fraction if fraction is not None else self.sent
            value = max(value, self.sent + 0.01)  # the spec wants a strictly rising value
            if value >= 100.0:
                continue
            self.sent = value
            await self.session.report_progress(value, 100.0, message)


def _guarded(recorder: Recorder | None, cancel: threading.Event) -> Recorder | None:
    """A recorder that writes nothing once the call was cancelled or the client left."""
    if recorder is None:
        return None

    def record(t: Tool, args: BaseModel, result: ToolResult) -> str | None:
        return None if cancel.is_set() else recorder(t, args, result)

    return record


async def _run_in_thread(t: Tool, raw: object, ctx: ToolContext) -> ToolResult:
    """Run the tool off the event loop; a cancel (or disconnect) sets ctx.cancel at once."""
    try:
        return await anyio.to_thread.run_sync(run_tool, t.name, raw, ctx, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        ctx.cancel.set()  # the engine checks it between chunks and stops
        raise


async def call_tool(
    session: ServerSession, name: str, raw: object, roots: list[Path], options: CallOptions
) -> types.CallToolResult:
    """One `tools/call`: errors become `isError` results; the server always stays up."""
    try:
        t = find_tool(name, options)
        check_arguments(t, name, raw)
        cancel = threading.Event()
        pump = ProgressPump(session)
        ctx = context(options.settings, roots, confine=True, progress=pump.report, cancel=cancel)
        ctx.recorder = _guarded(ctx.recorder, cancel)
        sender = asyncio.ensure_future(pump.run())
        try:
            result = await _run_in_thread(t, raw, ctx)
        finally:
            sender.cancel()
        return success_result(result)
    except NotRecordedError as exc:
        if not isinstance(exc.result, ToolResult):
            return error_result(exc)
        shown = success_result(exc.result)
        shown.content.append(types.TextContent(type="text", text=f"companion: {exc.text}"))
        return shown
    except CompanionError as exc:
        return error_result(exc)
    except Exception as exc:  # a bug: say so, keep serving
        log.exception("tool %s failed", name)
        return text_result(
            f"companion: internal error in {name}: {exc!r}. Next step: report it with the "
            "arguments used; other tools still work.",
            error=True,
        )
