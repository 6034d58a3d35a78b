"""The prompt templates (top-level prompts/*.md) as MCP prompts; $names become arguments."""

from __future__ import annotations

import functools
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS

MISSING = "(not given)"


def prompt_dir() -> Traversable:
    """The templates: package data `companion.prompts` when installed, else the checkout's."""
    try:
        return resources.files("companion.prompts")
    except ModuleNotFoundError:  # a source tree that was never installed
        return Path(__file__).resolve().parents[2] / "prompts"


@functools.cache
def templates() -> dict[str, str]:
    """Every template's text by name (file stem), sorted."""
    files = [f for f in prompt_dir().iterdir() if f.name.endswith(".md") and f.is_file()]
    return {f.name.removesuffix(".md"): f.read_text("utf-8") for f in sorted(files, key=str)}


def _summary(text: str) -> str:
    """The first line of a template, without heading marks, as its description."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    return line.lstrip("#").strip()


def _arguments(text: str) -> list[types.PromptArgument]:
    """One optional argument per $placeholder, in order of appearance."""
    return [
        types.PromptArgument(name=n, description=f"Fills ${n}; default {MISSING}.", required=False)
        for n in Template(text).get_identifiers()
    ]


def list_prompts() -> types.ListPromptsResult:
    """Every template as a prompt."""
    return types.ListPromptsResult(
        prompts=[
            types.Prompt(name=name, description=_summary(text), arguments=_arguments(text))
            for name, text in templates().items()
        ]
    )


def get_prompt(name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
    """A template with its placeholders filled, as one user message."""
    text = templates().get(name)
    if text is None:
        raise MCPError(
            INVALID_PARAMS,
            f"Unknown prompt {name!r}. Next step: call prompts/list; prompts: "
            f"{', '.join(templates())}.",
        )
    values = {n: MISSING for n in Template(text).get_identifiers()} | dict(arguments or {})
    filled = Template(text).safe_substitute(values)
    message = types.PromptMessage(role="user", content=types.TextContent(type="text", text=filled))
    return types.GetPromptResult(description=_summary(text), messages=[message])
