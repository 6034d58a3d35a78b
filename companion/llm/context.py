"""Prompt assembly: templates from prompts/, the open document quoted as data, and
the relevant results recorded in the audit store."""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template
from typing import Any

from companion.errors import CompanionError, InputError
from companion.llm.budget import TokenBudget
from companion.store.schemas import QueryResult
from companion.tools import ToolContext

log = logging.getLogger("companion.llm")
# Shares of the prompt budget the quoted document and the stored results may take at most.
DOCUMENT_SHARE = 0.4
STORED_SHARE = 0.15
STORED_RECORDS = 5
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024


def prompts_dir() -> Traversable:
    """The prompt templates: package data when installed, else the checkout's top-level prompts/."""
    try:
        return resources.files("companion.prompts")
    except ModuleNotFoundError:  # running from a source tree that was never installed
        return Path(__file__).resolve().parents[2] / "prompts"


@functools.lru_cache(maxsize=32)
def template(name: str) -> str:
    """The text of prompts/<name>.md."""
    try:
        return prompts_dir().joinpath(f"{name}.md").read_text("utf-8")
    except (FileNotFoundError, OSError):
        raise InputError(
            f"The prompt template {name!r} is missing from the companion package.",
            hint="reinstall companion (`pip install -e .`); prompts ship as package data.",
        ) from None


def render(name: str, **values: str) -> str:
    """A template with $placeholders filled (unknown placeholders are left as they are)."""
    return Template(template(name)).safe_substitute(values)


@dataclass
class DocumentContext:
    """What the editor sends along: a document (uri), an optional range, optional text."""

    uri: str | None = None
    range: dict[str, Any] | None = None
    text: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> DocumentContext | None:
        """Parse the `context` object of a chat request (None when absent)."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise InputError(
                "The chat context must be an object {uri?, range?, text?}.",
                hint="send context as an object, or leave it out.",
            )
        uri, rng, text = data.get("uri"), data.get("range"), data.get("text")
        if uri is not None and not isinstance(uri, str):
            raise InputError("context.uri must be a string.", hint="send a file:// URI.")
        if rng is not None and not _valid_range(rng):
            raise InputError(
                "context.range must be {start: {line, character}, end: {line, character}}.",
                hint="send an LSP Range, or leave it out.",
            )
        if text is not None and not isinstance(text, str):
            raise InputError("context.text must be a string.", hint="send the selected text.")
        return cls(uri=uri, range=rng, text=text)


def _valid_range(rng: Any) -> bool:
    """An LSP range with integer lines and characters."""
    if not isinstance(rng, dict):
        return False
    for end in ("start", "end"):
        pos = rng.get(end)
        if not isinstance(pos, dict) or not all(
            isinstance(pos.get(k), int) and pos[k] >= 0 for k in ("line", "character")
        ):
            return False
    return True


def _slice(text: str, rng: dict[str, Any]) -> str:
    """The text inside an LSP range (lines and characters, end exclusive)."""
    lines = text.splitlines(keepends=True)
    a = (int(rng["start"]["line"]), int(rng["start"]["character"]))
    b = (int(rng["end"]["line"]), int(rng["end"]["character"]))
    (sl, sc), (el, ec) = min(a, b), max(a, b)
    if sl >= len(lines):
        return ""
    if sl == el:
        return lines[sl][sc:ec]
    part = [lines[sl][sc:], *lines[sl + 1 : el]]
    if el < len(lines):
        part.append(lines[el][:ec])
    return "".join(part)


def quote(text: str, label: str) -> str:
    """Quote text as data inside a fence no line of it can close."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{label}\n{fence}text\n{text}\n{fence}"


def document_text(doc: DocumentContext, ctx: ToolContext) -> tuple[str, str]:
    """(label, text) of the quoted document; files are read only inside the workspace."""
    where = doc.uri or "the selection"
    if doc.text is not None:
        text = doc.text
        if doc.range is not None:
            where += f" (lines {doc.range['start']['line'] + 1}-{doc.range['end']['line'] + 1})"
        return f"Selection from {where}:", text
    if doc.uri is None:
        return "", ""
    path: Path = ctx.path(doc.uri)
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise InputError(
                f"{path} is too large to quote in a chat ({path.stat().st_size} bytes).",
                hint="select the part you are asking about and ask again.",
            )
        text = path.read_text("utf-8", errors="replace")
    except OSError as exc:
        raise InputError(
            f"Cannot read {path}: {exc.strerror or exc}.", hint="save the file and ask again."
        ) from None
    if doc.range is not None:
        lines = f"lines {doc.range['start']['line'] + 1}-{doc.range['end']['line'] + 1}"
        return f"Selection ({lines}) of {path.name} ({doc.uri}):", _slice(text, doc.range)
    return f"Document {path.name} ({doc.uri}):", text


def stored_results(ctx: ToolContext, doc: DocumentContext | None) -> tuple[str, str | None]:
    """Markdown of recent relevant store records, or ("", note) when none can be read."""
    if not ctx.settings.store_enabled:
        return "", None
    base: dict[str, Any] = {"limit": STORED_RECORDS, "tensor_limit": 5, "format": "md"}
    attempts: list[dict[str, Any]] = []
    if doc is not None and doc.uri is not None:
        try:
            p = ctx.path(doc.uri)
            attempts.append({**base, "model": [str(p.parent)]})
        except CompanionError:
            pass
    attempts.append(base)
    for args in attempts:
        try:
            result = ctx.run(
                "audit.query", args, ToolContext(settings=ctx.settings, roots=ctx.roots)
            )
        except CompanionError as exc:
            return "", f"Stored results were not included: {exc.message}"
        if isinstance(result, QueryResult) and result.records:
            return result.to_markdown(), None
    return "", None


@dataclass
class SystemPrompt:
    """The assembled system message and the notes collected while building it."""

    text: str
    notes: list[str] = field(default_factory=list)


def build_system_prompt(
    budget: TokenBudget,
    ctx: ToolContext,
    doc: DocumentContext | None,
    include_store: bool = True,
) -> SystemPrompt:
    """System template + quoted document + stored results, each capped to a budget share."""
    parts = [template("system").strip()]
    notes: list[str] = []
    if doc is not None:
        try:
            label, text = document_text(doc, ctx)
        except InputError as exc:
            # e.g. a result file outside the workspace: answer anyway, say what was left out
            label, text = "", ""
            notes.append(f"The open document was not quoted: {exc.text}")
        if text:
            cap = int(budget.prompt_limit * DOCUMENT_SHARE)
            text, note = budget.truncate_text(text, cap, "The quoted document")
            notes += [note] if note else []
            parts.append(render("context", document=quote(text, label)).strip())
    if include_store:
        results, note = stored_results(ctx, doc)
        notes += [note] if note else []
        if results:
            cap = int(budget.prompt_limit * STORED_SHARE)
            results, note = budget.truncate_text(results, cap, "The stored results")
            notes += [note] if note else []
            parts.append(render("stored", results=quote(results, "Records:")).strip())
    return SystemPrompt("\n\n".join(parts), notes)
