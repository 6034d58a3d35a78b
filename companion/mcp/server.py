"""The MCP server over stdio: handlers adapt MCP requests to the registry, ~10 lines each."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from companion import __version__
from companion.mcp import prompts, resources
from companion.mcp.calls import CallOptions, call_tool
from companion.mcp.roots import Roots
from companion.mcp.schema import declarations
from companion.settings import Settings

Ctx = ServerRequestContext[Any]
INSTRUCTIONS = (
    "companion answers 'was model B derived from model A, or trained from scratch?' from "
    "training logs, weights, configs and tokenizers. Every figure comes with its baseline and "
    "every verdict (derived | independent | inconclusive) with checkable reasons. Prefer its "
    "tools over recall, quote their numbers, and cite record ids. The prompt "
    "`investigate_pair` runs the whole workflow."
)


def build_server(roots: list[Path], allow_writes: bool, settings: Settings) -> Server[Any]:
    """A low-level MCP server whose tools, resources and prompts come from the registry."""
    options = CallOptions(settings, allow_writes)
    workspace = Roots(roots)

    async def list_tools(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Any:
        return types.ListToolsResult(tools=declarations(allow_writes))

    async def run(ctx: Ctx, params: types.CallToolRequestParams) -> Any:
        folders = await workspace.get(ctx.session)
        return await call_tool(ctx.session, params.name, params.arguments, folders, options)

    async def list_records(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Any:
        return await resources.list_records(settings, params.cursor if params else None)

    async def templates(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Any:
        return types.ListResourceTemplatesResult(resource_templates=[resources.TEMPLATE])

    async def read(ctx: Ctx, params: types.ReadResourceRequestParams) -> Any:
        return await resources.read_record(settings, str(params.uri))

    async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Any:
        return prompts.list_prompts()

    async def get_prompt(ctx: Ctx, params: types.GetPromptRequestParams) -> Any:
        return prompts.get_prompt(params.name, params.arguments)

    async def roots_changed(ctx: Ctx, params: types.NotificationParams | None) -> None:
        workspace.invalidate()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # roots notifications are deprecated only in 2026-07-28
        return Server(
            "companion",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=list_tools,
            on_call_tool=run,
            on_list_resources=list_records,
            on_list_resource_templates=templates,
            on_read_resource=read,
            on_list_prompts=list_prompts,
            on_get_prompt=get_prompt,
            on_roots_list_changed=roots_changed,
        )


async def _serve(server: Server[Any]) -> None:
    """Serve one client over stdin/stdout until it disconnects."""
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def serve(roots: list[Path], allow_writes: bool = False) -> int:
    """Entry point of `companion mcp`: logs go to stderr, stdout carries only MCP."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    bad = [r for r in roots if not r.expanduser().is_dir()]
    if bad:
        from companion.errors import InputError

        raise InputError(f"--root {bad[0]} is not a folder.", hint="pass an existing folder.")
    anyio.run(_serve, build_server(roots, allow_writes, Settings()))
    return 0
