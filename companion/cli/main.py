"""The `companion` command: subcommands generated from the tool registry, plus serve and demo."""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from companion import __version__
from companion.errors import CompanionError, InputError, NotRecordedError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from companion.tools import ToolResult

EXIT_USER_ERROR = 2
# Documented exit codes (README "Exit codes"): scripts and CI gate on them.
EXIT_CODES: dict[str, int] = {
    "mismatch": 3,  # `companion verify`: the recorded result was not reproduced (always)
    "derived": 4,
    "independent": 5,
    "inconclusive": 6,
    "from_scratch": 7,
    "warm_start": 8,
    "contradicts": 9,  # an investigation's claim contradicted
    "cannot tell": 10,
}
FAIL_ON_CHOICES: tuple[str, ...] = (
    "mismatch",
    "derived",
    "independent",
    "inconclusive",
    "from_scratch",
    "warm_start",
    "contradicts",
    "cannot-tell",
)
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug, reported in one line


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


def _choices(annotation: Any) -> list[str] | None:
    """The allowed values of a Literal[str, ...] annotation (possibly optional), else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        return [str(v) for v in values] if all(isinstance(v, str) for v in values) else None
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None) and (found := _choices(arg)) is not None:
                return found
    return None


def _help(field: Any) -> str:
    """A field's description with its default, when it has a meaningful one."""
    text = (field.description or "").replace("%", "%%")
    default = field.get_default(call_default_factory=True)
    if default not in (None, [], (), "", False) and not field.is_required():
        text += f" (default: {default})"
    return text


def _comma_list(value: str) -> list[str]:
    """One command-line word of a comma list ('norm,attn') as its items."""
    return [v.strip() for v in value.split(",") if v.strip()]


def add_model_arguments(
    parser: argparse.ArgumentParser, model: type[BaseModel], positional: tuple[str, ...]
) -> None:
    """Add one argument per input field; values stay strings and pydantic coerces them."""
    from companion.tools import WholeWords

    for name, field in model.model_fields.items():
        help_text = _help(field)
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
        elif _is_list(field.annotation) and any(isinstance(m, WholeWords) for m in field.metadata):
            # Paths may hold commas: one whole word per flag, the flag repeated for more.
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                action="append",
                metavar="PATH",
                required=field.is_required(),
                help=help_text + " The flag may repeat.",
            )
        elif _is_list(field.annotation):
            # One word per flag, comma-separated and repeatable: `--roles norm,attn` or
            # `--roles norm --roles attn`; never swallows the positionals that follow.
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                action="extend",
                type=_comma_list,
                metavar="A,B",
                required=field.is_required(),
                help=help_text + " Comma list; the flag may repeat.",
            )
        else:
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                choices=_choices(field.annotation),
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
        p.add_argument(
            "--fail-on",
            dest="_fail_on",
            action="extend",
            type=_comma_list,
            metavar="OUTCOME",
            default=[],
            help="exit non-zero when the outcome is one of these (comma list): "
            + ", ".join(FAIL_ON_CHOICES)
            + "; exit codes in README",
        )
        p.add_argument(
            "--progress",
            dest="_progress",
            action="store_true",
            help="draw progress bars even when stderr is not a terminal",
        )
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
        epilog="Exit codes: 0 ok; 2 bad input; 3 verify mismatch; with --fail-on: 4 derived, "
        "5 independent, 6 inconclusive, 7 from_scratch, 8 warm_start, 9 claim contradicted, "
        "10 claim cannot tell.",
        description="Was model B derived from model A, or trained from scratch? Evidence from "
        "training logs, weights and architectures, calibrated and reproducible; a language "
        "server for editors; an LLM chat grounded in the recorded results.",
    )
    parser.add_argument("--version", action="version", version=f"companion {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the language server (stdio by default)",
        description="Run the companion language server for an editor: JSON-RPC over stdio "
        "(the default) or over loopback TCP with --tcp. Logs go to stderr or --log-file; "
        "with --port 0 the log names the port actually bound.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--tcp", action="store_true", help="listen on 127.0.0.1 instead of stdio")
    serve.add_argument("--port", type=int, default=2087, help="TCP port (with --tcp)")
    serve.add_argument("--log-file", type=Path, help="write logs to this file (default: stderr)")
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
    demo = sub.add_parser(
        "demo",
        help="build an example workspace and run every tool on it",
        description="Build an example workspace with the project's own generators, run every "
        "tool on it (recorded in your default store), write the reports and the Solar dossier, "
        "and print a short summary with the commands to try next.",
    )
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
    if text is None and not sys.stdout.isatty():
        text = result.to_markdown()  # redirected: the raw markdown, no terminal rendering
    if text is not None:  # machine formats (csv, table) go out raw, ready to redirect
        print(text, end="" if text.endswith("\n") else "\n")
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(result.to_markdown()))


def run_cli_tool(ns: argparse.Namespace) -> int:
    """Run the tool a parsed command line names."""
    from companion.settings import load_settings
    from companion.toolbox import context, run_tool
    from companion.tools import ToolResult, get_tool

    t = get_tool(ns._tool)
    raw = {k: v for k, v in vars(ns).items() if k in t.input_model.model_fields and v is not None}
    settings = load_settings()
    if ns._no_store:
        settings = settings.model_copy(update={"store_enabled": False})
    from companion.cli.progress import console_progress

    with console_progress(force=ns._progress) as progress:
        ctx = context(settings, [Path.cwd()], progress=progress)
        try:
            result = run_tool(t.name, raw, ctx)
        except NotRecordedError as exc:
            if isinstance(exc.result, ToolResult):
                _print_result(exc.result, ns._json)  # show the answer, then the store problem
            raise
    _print_result(result, ns._json)
    return exit_code(result, ns._fail_on)


def outcomes(result: ToolResult) -> list[str]:
    """The outcomes a result can be gated on: its verdict, status and claim verdict."""
    found = [result.facts().verdict, getattr(result, "status", None)]
    found.append(getattr(result, "claim_verdict", None))
    return [str(x) for x in found if x is not None]


def exit_code(result: ToolResult, fail_on: list[str]) -> int:
    """0, or the documented code of the first gated outcome (a mismatch always fails)."""
    wanted = {f.replace("-", " ") for f in fail_on}
    bad = [f for f in wanted if f not in {c.replace("-", " ") for c in FAIL_ON_CHOICES}]
    if bad:
        raise InputError(
            f"Unknown --fail-on outcome(s): {', '.join(sorted(bad))}.",
            hint=f"use {', '.join(FAIL_ON_CHOICES)}.",
        )
    for outcome in outcomes(result):
        if outcome == "mismatch" or outcome in wanted:
            return EXIT_CODES.get(outcome, 1)
    return 0


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
    except Exception as exc:  # a bug: one clean line, the traceback only when asked for
        return _internal_error(exc)


def _internal_error(exc: Exception) -> int:
    """Report an unexpected exception as one line (traceback with COMPANION_DEBUG=1)."""
    import os
    import traceback

    if os.environ.get("COMPANION_DEBUG"):
        traceback.print_exception(exc, file=sys.stderr)
    print(
        f"companion: internal error ({type(exc).__name__}: {str(exc)[:200]}). Next step: "
        "re-run with COMPANION_DEBUG=1 for the traceback and report it as a bug.",
        file=sys.stderr,
    )
    return EXIT_INTERNAL_ERROR
