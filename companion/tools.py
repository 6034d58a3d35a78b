"""The tool registry: each tool is declared once and reaches the CLI, LSP and LLM from here."""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ValidationError

from companion.errors import Cancelled, CompanionError, InputError, NotRecordedError
from companion.settings import Settings

# Modules that declare tools. Each engine adds its own line; importing one registers its tools.
TOOL_MODULES: tuple[str, ...] = (
    "companion.workspace",
    "companion.store.tool",
    "companion.architecture.tool",
    "companion.audit.tool",
    "companion.evidence.tool",
)

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)
Progress = Callable[[str, float | None], None]
Recorder = Callable[["Tool", BaseModel, BaseModel], "str | None"]


def _no_progress(message: str, fraction: float | None) -> None:
    """Discard progress reports."""


@dataclass
class ToolContext:
    """What a tool may use besides its input: roots, settings, progress and cancellation."""

    settings: Settings = field(default_factory=Settings)
    roots: list[Path] = field(default_factory=list)
    confine: bool = False
    progress: Progress = _no_progress
    cancel: threading.Event = field(default_factory=threading.Event)
    recorder: Recorder | None = None

    def check_cancelled(self) -> None:
        """Raise `Cancelled` if the user cancelled this job."""
        if self.cancel.is_set():
            raise Cancelled()

    def path(self, value: str | Path) -> Path:
        """Resolve a user path; when confined, refuse anything outside the workspace roots."""
        raw = str(value)
        if raw.startswith("file://"):
            from urllib.parse import unquote, urlparse

            raw = unquote(urlparse(raw).path)
        p = Path(raw).expanduser()
        if not p.is_absolute() and self.roots:
            p = self.roots[0] / p
        try:
            resolved = p.resolve()
        except (RuntimeError, OSError) as exc:  # symlink loops raise RuntimeError on 3.11
            raise InputError(
                f"Cannot resolve path {raw!r}: a symlink loop or unreadable link ({exc}).",
                hint="fix or remove the symlink loop.",
            ) from None
        if self.confine and not any(resolved.is_relative_to(r.resolve()) for r in self.roots):
            raise InputError(
                f"Path {raw!r} is outside the workspace folders.",
                hint="pass a path inside the open workspace.",
            )
        return resolved


@dataclass(frozen=True)
class Tool:
    """A declared tool: pure function plus its pydantic input and output models."""

    name: str
    func: Callable[[Any, ToolContext], BaseModel]
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    description: str
    read_only: bool
    cli: str
    positional: tuple[str, ...] = ()
    record: bool = False

    @property
    def command(self) -> str:
        """The LSP workspace/executeCommand name."""
        return f"companion.{self.name}"

    def llm_schema(self) -> dict[str, Any]:
        """The OpenAI function-calling declaration for this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name.replace(".", "_"),
                "description": self.description,
                "parameters": self.input_model.model_json_schema(),
            },
        }


REGISTRY: dict[str, Tool] = {}
_loaded = False
_lock = threading.Lock()


def tool(
    name: str,
    *,
    description: str,
    read_only: bool,
    cli: str | None = None,
    positional: tuple[str, ...] = (),
    record: bool = False,
) -> Callable[[Callable[[In, ToolContext], Out]], Callable[[In, ToolContext], Out]]:
    """Declare a tool; input and output models are read from the function's annotations."""

    def register(func: Callable[[In, ToolContext], Out]) -> Callable[[In, ToolContext], Out]:
        hints = get_type_hints(func)
        params = list(inspect.signature(func).parameters)
        input_model, output_model = hints[params[0]], hints["return"]
        for fld in positional:
            if fld not in input_model.model_fields:
                raise TypeError(f"tool {name}: positional {fld!r} is not an input field")
        REGISTRY[name] = Tool(
            name=name,
            func=func,
            input_model=input_model,
            output_model=output_model,
            description=description,
            read_only=read_only,
            cli=cli or name.replace(".", " "),
            positional=positional,
            record=record,
        )
        return func

    return register


def load_tools() -> dict[str, Tool]:
    """Import every tool module once and return the registry."""
    global _loaded
    with _lock:
        if not _loaded:
            for module in TOOL_MODULES:
                importlib.import_module(module)
            _loaded = True
    return REGISTRY


def get_tool(name: str) -> Tool:
    """Look a tool up by name (with or without the `companion.` prefix or `_` separators)."""
    tools = load_tools()
    key = name.removeprefix("companion.")
    if key not in tools:
        key = next((n for n in tools if n.replace(".", "_") == key), key)
    if key not in tools:
        raise InputError(f"Unknown tool {name!r}.", hint=f"use one of: {', '.join(sorted(tools))}.")
    return tools[key]


def validation_message(exc: ValidationError) -> str:
    """Render a pydantic error as one readable line per field."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
    )


def parse_input(t: Tool, raw: object) -> BaseModel:
    """Validate raw arguments against a tool's input model, as an `InputError` on failure."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(
            f"Tool {t.name} takes an object of arguments, got {type(raw).__name__}.",
            hint=f"send {{...}} matching: {', '.join(t.input_model.model_fields)}.",
        )
    try:
        return t.input_model.model_validate(raw)
    except ValidationError as exc:
        raise InputError(
            f"Invalid arguments for {t.name}: {validation_message(exc)}.",
            hint=f"see `companion {t.cli} --help`.",
        ) from None


def run_tool(name: str, raw: object, ctx: ToolContext) -> BaseModel:
    """Validate, run and (when the context has a recorder) record one tool call."""
    t = get_tool(name)
    args = parse_input(t, raw)
    ctx.check_cancelled()
    result = t.func(args, ctx)
    if t.record and ctx.recorder is not None:
        try:
            record_id = ctx.recorder(t, args, result)
        except CompanionError as exc:
            # A long computation must not be lost because the store is locked or damaged:
            # the error carries the result so that front doors can still show it.
            raise NotRecordedError(exc, result) from None
        if record_id is not None and "record_id" in type(result).model_fields:
            result = result.model_copy(update={"record_id": record_id})
    return result


def llm_tools() -> list[dict[str, Any]]:
    """Function-calling schemas of the read-only tools (the only ones an LLM may call)."""
    return [t.llm_schema() for t in load_tools().values() if t.read_only]


def render_markdown(result: BaseModel) -> str:
    """A human rendering of a tool result: its own `to_markdown` if it has one, else JSON."""
    to_md = getattr(result, "to_markdown", None)
    if callable(to_md):
        return str(to_md())
    return "```json\n" + result.model_dump_json(indent=2) + "\n```"
