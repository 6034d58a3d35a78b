"""workspace/executeCommand: every registry tool as `companion.<name>`, plus `companion.show`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsprotocol import types as lsp

from companion.errors import InputError
from companion.server.core import CompanionServer, handles_errors
from companion.toolbox import load_tools
from companion.tools import Tool


def _single_argument(name: str, args: tuple[Any, ...]) -> object:
    """Commands take one object argument (or none)."""
    if len(args) > 1:
        raise InputError(
            f"Command {name} takes one object argument, got {len(args)} arguments.",
            hint="send arguments: [{...}].",
        )
    return args[0] if args else {}


def _register_tool(server: CompanionServer, tool: Tool) -> None:
    """One executeCommand handler per tool; results are returned as JSON."""

    @server.command(tool.command)
    @handles_errors
    async def run(ls: CompanionServer, *args: Any) -> Any:
        result = await ls.run_tool(tool.name, _single_argument(tool.command, args))
        return result.model_dump(mode="json")


def register(server: CompanionServer) -> None:
    """Register one command per tool and the generic `companion.show`."""
    for tool in load_tools().values():
        _register_tool(server, tool)

    @server.command("companion.show")
    @handles_errors
    async def show(ls: CompanionServer, *args: Any) -> Any:
        """Run a tool and open its markdown rendering as a document (used by code actions)."""
        spec = _single_argument("companion.show", args)
        if not isinstance(spec, dict) or not isinstance(spec.get("tool"), str):
            raise InputError(
                "companion.show needs {tool: <name>, args: {...}}.",
                hint="pass the tool name and its arguments.",
            )
        result = await ls.run_tool(spec["tool"], spec.get("args") or {})
        title = str(spec.get("title") or spec["tool"])
        uri = ls.open_result(title, result.to_markdown())
        external = spec.get("open_external")
        caps = ls.client_capabilities.window
        can_show = caps is not None and caps.show_document is not None
        if can_show and isinstance(external, str) and Path(external).is_file():
            # The HTML dossier opens in the browser: window/showDocument with external: true.
            await ls.window_show_document_async(
                lsp.ShowDocumentParams(uri=Path(external).as_uri(), external=True)
            )
        return {"uri": uri, "result": result.model_dump(mode="json")}
