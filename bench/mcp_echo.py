"""A bare MCP echo server on the same SDK (low-level Server, stdio): the latency baseline.

`python bench/mcp_echo.py [LISTING.json]`: with a file, `tools/list` answers with the tools in
it (plus `echo`), so a listing of the same size as companion's can be timed without companion.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


ECHO = types.Tool(name="echo", input_schema=SCHEMA, output_schema=SCHEMA)
EXTRA = json.loads(Path(sys.argv[1]).read_text()) if len(sys.argv) > 1 else []
LISTING = types.ListToolsResult(tools=[ECHO, *(types.Tool.model_validate(t) for t in EXTRA)])


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    """`echo`, plus the tools of the listing file."""
    return LISTING


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    """Return the text argument."""
    text = str((params.arguments or {}).get("text", ""))
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content={"text": text}
    )


async def main() -> None:
    """Serve until stdin closes."""
    server = Server("echo", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (r, w):
        await server.run(r, w, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
