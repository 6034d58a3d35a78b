"""The tool contract: how a tool is declared, what it is given, and what every result offers.

A tool is declared once, with `@tool`, as a function from a pydantic input model to a
`ToolResult`. The assembled registry (`companion.toolbox`) and every front door (CLI, LSP,
MCP, the LLM's function calling) are generated from these declarations; the store and the
front doors read results only through the `ToolResult` contract below.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_type_hints

from pydantic import BaseModel, ValidationError

from companion.errors import InputError
from companion.jobs import Job, Progress, no_progress
from companion.manifest import Manifest
from companion.model import Model
from companion.settings import Settings

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound="ToolResult")
Recorder = Callable[["Tool", BaseModel, "ToolResult"], "str | None"]
Runner = Callable[[str, object, "ToolContext"], "ToolResult"]
Table = Literal["audit", "evidence", "tokenizer", "fingerprint"]
Show = Callable[[str, "ToolResult"], None]  # how a demo section hands a result to the demo


@dataclass(frozen=True)
class WholeWords:
    """Field metadata: a list whose command-line words are taken whole (paths: no comma split)."""


@dataclass(frozen=True)
class Facts:
    """The typed facts of a result that the store and the front doors read (never guessed)."""

    table: Table | None = None
    verdict: str | None = None
    reasons: tuple[Any, ...] = ()
    specs: tuple[BaseModel | None, ...] = ()
    rows: Iterable[Any] = ()


class ToolResult(Model):
    """What every tool returns: a record id once stored, a manifest, markdown and facts."""

    record_id: str | None = None
    manifest: Manifest | None = None

    def to_markdown(self) -> str:
        """A rendering for people (by default the JSON in a code block)."""
        return "```json\n" + self.model_dump_json(indent=2) + "\n```"

    def facts(self) -> Facts:
        """The verdict, reasons, per-side specs and per-tensor rows this result carries."""
        return Facts()

    def to_json(self) -> str:
        """The machine rendering printed by `--json`."""
        return self.model_dump_json(indent=2)

    def to_text(self) -> str | None:
        """A raw machine format (csv, table) printed as is, or None to render markdown."""
        return None


@dataclass
class ToolContext:
    """What a tool may use besides its input: roots, settings, progress and cancellation."""

    settings: Settings = field(default_factory=Settings)
    roots: list[Path] = field(default_factory=list)
    confine: bool = False
    progress: Progress = no_progress
    cancel: threading.Event = field(default_factory=threading.Event)
    recorder: Recorder | None = None
    runner: Runner | None = None

    def job(self) -> Job:
        """The job handle engines receive (progress and cancel, nothing else)."""
        return Job(self.progress, self.cancel)

    def check_cancelled(self) -> None:
        """Raise `Cancelled` if the user cancelled this job."""
        self.job().check()

    def run(self, name: str, raw: object, ctx: ToolContext | None = None) -> ToolResult:
        """Run another registry tool (a tool that re-runs or queries others)."""
        if self.runner is None:
            raise RuntimeError("this ToolContext was built without a runner")
        return self.runner(name, raw, ctx or self)

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
    func: Callable[[Any, ToolContext], ToolResult]
    input_model: type[BaseModel]
    output_model: type[ToolResult]
    description: str
    read_only: bool
    cli: str
    positional: tuple[str, ...] = ()
    record: bool = False
    outputs: tuple[str, ...] = ()

    @property
    def output_fields(self) -> tuple[str, ...]:
        """Parameters that make the tool write files (never offered in a confined context)."""
        extra = ("overwrite",) if "overwrite" in self.input_model.model_fields else ()
        return self.outputs + extra

    @property
    def command(self) -> str:
        """The LSP workspace/executeCommand name."""
        return f"companion.{self.name}"

    @property
    def wire_name(self) -> str:
        """The name LLM function calling and MCP use (no dots)."""
        return wire_name(self.name)

    def llm_schema(self, confined: bool = True, compact: bool = False) -> dict[str, Any]:
        """The OpenAI function-calling declaration (confined: without output parameters;
        compact: without the EXPERT tuning knobs, which keep their defaults)."""
        params = self.input_model.model_json_schema()
        props = {k: dict(v) for k, v in params.get("properties", {}).items()}
        drop = set(self.output_fields) if confined else set()
        drop |= {k for k, v in props.items() if compact and v.get(EXPERT_KEY)}
        props = {k: v for k, v in props.items() if k not in drop}
        for v in props.values():
            v.pop(EXPERT_KEY, None)
        params = {**params, "properties": props}
        if "required" in params:
            params["required"] = [r for r in params["required"] if r not in drop]
        return {
            "type": "function",
            "function": {
                "name": self.wire_name,
                "description": self.description,
                "parameters": params,
            },
        }


def wire_name(name: str) -> str:
    """A registry name as LLM and MCP tools spell it (`audit.compare` -> `audit_compare`)."""
    return name.replace(".", "_")


DECLARED: dict[str, Tool] = {}
EXPERT_KEY = "x-expert"
# Field(json_schema_extra=EXPERT): a tuning knob left out of the chat's tool declarations
# (small local models have 8K-token windows; the knob keeps its default there).
EXPERT: dict[str, Any] = {EXPERT_KEY: True}


def tool(
    name: str,
    *,
    description: str,
    read_only: bool,
    cli: str | None = None,
    positional: tuple[str, ...] = (),
    record: bool = False,
    outputs: tuple[str, ...] = (),
) -> Callable[[Callable[[In, ToolContext], Out]], Callable[[In, ToolContext], Out]]:
    """Declare a tool; input and output models are read from the function's annotations."""

    def register(func: Callable[[In, ToolContext], Out]) -> Callable[[In, ToolContext], Out]:
        hints = get_type_hints(func)
        params = list(inspect.signature(func).parameters)
        input_model, output_model = hints[params[0]], hints["return"]
        if not issubclass(output_model, ToolResult):
            raise TypeError(f"tool {name}: its result must be a ToolResult")
        for fld in positional + outputs:
            if fld not in input_model.model_fields:
                raise TypeError(f"tool {name}: positional {fld!r} is not an input field")
        DECLARED[name] = Tool(
            name=name,
            func=func,
            input_model=input_model,
            output_model=output_model,
            description=description,
            read_only=read_only,
            cli=cli or name.replace(".", " "),
            positional=positional,
            record=record,
            outputs=outputs,
        )
        return func

    return register


def get_tool(name: str) -> Tool:
    """Look a tool up by name (with or without the `companion.` prefix or `_` separators)."""
    key = name.removeprefix("companion.")
    if key not in DECLARED:
        key = next((n for n, t in DECLARED.items() if t.wire_name == key), key)
    if key not in DECLARED:
        raise InputError(
            f"Unknown tool {name!r}.", hint=f"use one of: {', '.join(sorted(DECLARED))}."
        )
    return DECLARED[key]


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
