"""The `companion` command: subcommands generated from the tool registry, plus serve and demo."""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from companion import __version__
from companion.errors import CompanionError, NotRecordedError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from companion.tools import ToolResult

EXIT_USER_ERROR = 2


def _is_list(annotation: Any) -> bool:
    """Whether a field annotation is a list (possibly optional)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation) if a is not type(None))
    return origin in (list, tuple, set)


def _is_bool(annotation: Any) -> bool:
    """Whether a field annotation is a bool (possibly optional)."""
    if annotation is bool:
        return True
    return typing.get_origin(annotation) in (
        typing.Union,
        types.UnionType,
    ) and bool in typing.get_args(annotation)


def add_model_arguments(
    parser: argparse.ArgumentParser, model: type[BaseModel], positional: tuple[str, ...]
) -> None:
    """Add one argument per input field; values stay strings and pydantic coerces them."""
    for name, field in model.model_fields.items():
        help_text = field.description or ""
        if name in positional:
            nargs = ("+" if field.is_required() else "*") if _is_list(field.annotation) else None
            if nargs is None and not field.is_required():
                nargs = "?"
            parser.add_argument(name, nargs=nargs, help=help_text)
        elif _is_bool(field.annotation):
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                nargs="+" if _is_list(field.annotation) else None,
                required=field.is_required(),
                help=help_text,
            )


def _tool_parsers(sub: Any) -> None:
    """Create subcommands (nested for names like `arch describe`) for every tool."""
    from companion.toolbox import load_tools

    groups: dict[str, Any] = {}
    for t in sorted(load_tools().values(), key=lambda t: t.cli):
        words = t.cli.split()
        parent = sub
        for depth, word in enumerate(words[:-1]):
            key = " ".join(words[: depth + 1])
            if key not in groups:
                group = parent.add_parser(word, help=f"{word} tools")
                groups[key] = group.add_subparsers(dest=f"cmd_{depth + 1}", required=True)
            parent = groups[key]
        p = parent.add_parser(words[-1], help=t.description, description=t.description)
        add_model_arguments(p, t.input_model, t.positional)
        p.add_argument("--json", dest="_json", action="store_true", help="print JSON")
        if t.record:
            p.add_argument(
                "--no-store",
                dest="_no_store",
                action="store_true",
                help="do not record this run in the audit store",
            )
        p.set_defaults(_tool=t.name, _no_store=False)


def build_parser(with_tools: bool = True) -> argparse.ArgumentParser:
    """The argument parser; without tools for `serve` and `mcp`, whose start-up clients feel."""
    parser = argparse.ArgumentParser(
        prog="companion",
        description="Was model B derived from model A, or trained from scratch? Evidence from "
        "training logs, weights and architectures, calibrated and reproducible; a language "
        "server for editors; an LLM chat grounded in the recorded results.",
    )
    parser.add_argument("--version", action="version", version=f"companion {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", action="store_true", help="listen on 127.0.0.1 instead of stdio")
    serve.add_argument("--port", type=int, default=2087, help="TCP port (with --tcp)")
    serve.add_argument("--log-file", type=Path, help="write logs to this file")
    serve.add_argument("--stdio", action="store_true", help="accepted for editor compatibility")
    mcp = sub.add_parser("mcp", help="run the MCP server over stdio (for Cline, Claude Code...)")
    mcp.add_argument(
        "--root",
        dest="roots",
        action="append",
        type=Path,
        default=[],
        help="a folder tools may read (repeatable); default: the client's roots, else the cwd",
    )
    mcp.add_argument(
        "--allow-writes", action="store_true", help="also offer tools that write files"
    )
    demo = sub.add_parser("demo", help="build an example workspace and run every tool on it")
    demo.add_argument(
        "folder", nargs="?", type=Path, help="where to build it (default: a temp dir)"
    )
    if with_tools:
        _tool_parsers(sub)
        from companion.cli import chat

        chat.add_parser(sub)
    return parser


def _print_result(result: ToolResult, as_json: bool) -> None:
    """Print a tool result as JSON, as its raw machine format, or as rendered markdown."""
    if as_json:
        print(result.to_json())
        return
    text = result.to_text()
    if text is not None:  # machine formats (csv, table) go out raw, ready to redirect
        print(text, end="" if text.endswith("\n") else "\n")
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(result.to_markdown()))


def run_cli_tool(ns: argparse.Namespace) -> int:
    """Run the tool a parsed command line names."""
    from companion.settings import Settings
    from companion.toolbox import context, run_tool
    from companion.tools import ToolResult, get_tool

    t = get_tool(ns._tool)
    raw = {k: v for k, v in vars(ns).items() if k in t.input_model.model_fields and v is not None}
    settings = Settings()
    if ns._no_store:
        settings = settings.model_copy(update={"store_enabled": False})
    ctx = context(settings, [Path.cwd()], progress=_console_progress())
    try:
        result = run_tool(t.name, raw, ctx)
    except NotRecordedError as exc:
        if isinstance(exc.result, ToolResult):
            _print_result(exc.result, ns._json)  # show the answer, then the store problem
        raise
    _print_result(result, ns._json)
    return 0


def _console_progress() -> Any:
    """A progress callback that draws on stderr (never stdout, which carries results)."""
    from rich.console import Console

    err = Console(stderr=True)
    last: list[str] = [""]

    def report(message: str, fraction: float | None) -> None:
        if not err.is_terminal or message == last[0]:
            return
        last[0] = message
        pct = "" if fraction is None else f" {fraction * 100:5.1f}%"
        err.print(f"[dim]…{pct} {message}[/dim]")

    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point; CompanionError becomes a clean message and exit code 2."""
    try:
        args = sys.argv[1:] if argv is None else argv
        ns = build_parser(with_tools=args[:1] not in (["serve"], ["mcp"])).parse_args(args)
        if ns.command == "serve":
            from companion.cli.serve import serve

            return serve(tcp=ns.tcp, port=ns.port, log_file=ns.log_file)
        if ns.command == "mcp":
            from companion.mcp.server import serve as serve_mcp

            return serve_mcp(ns.roots, allow_writes=ns.allow_writes)
        if ns.command == "demo":
            from companion.cli.demo import run_demo

            return run_demo(ns.folder)
        if getattr(ns, "_extra", None) is not None:
            return int(ns._extra(ns))
        return run_cli_tool(ns)
    except CompanionError as exc:
        print(f"companion: {exc.text}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("companion: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: not an error; silence the flush at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
