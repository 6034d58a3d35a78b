"""Chat in a file, for any LSP client: the pending question of a `*.chat.md` document is
answered by streaming into the document through workspace/applyEdit (`companion.chat.ask`).

A chat file is markdown with `## You` and `## companion` sections; the last non-empty `## You`
section without an answer is the question, the sections before it are the history.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from typing import Any

from lsprotocol import types as lsp
from pygls.workspace import TextDocument

from companion.errors import CompanionError, InputError
from companion.server.chat import Stream, plain, run_chat, server_stream
from companion.server.core import CompanionServer, handles_errors

log = logging.getLogger("companion.server.chat")
_HEADING = re.compile(r"^##[ \t]+(you|companion)[ \t]*$", re.IGNORECASE | re.MULTILINE)
# How long a final edit may wait for the client after a cancel.
FLUSH_TIMEOUT_S = 5.0


def parse_chat(text: str) -> tuple[list[dict[str, Any]], str | None, int | None]:
    """(history, pending question or None, line of the question's heading)."""
    marks = list(_HEADING.finditer(text))
    sections: list[tuple[str, str, int]] = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        role = "user" if m.group(1).lower() == "you" else "assistant"
        body = "\n".join(
            line for line in text[m.end() : end].strip().splitlines()
            if not line.startswith("> Note: ")
        ).strip()  # fmt: skip
        sections.append((role, body, text.count("\n", 0, m.start())))
    sections = [s for s in sections if s[1]]
    if not sections or sections[-1][0] != "user":
        return [{"role": r, "content": b} for r, b, _ in sections], None, None
    *before, (_, question, line) = sections
    return [{"role": r, "content": b} for r, b, _ in before], question, line


def _units(text: str, encoding: str) -> int:
    """Length of `text` in the negotiated position encoding."""
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-32":
        return len(text)
    return len(text.encode("utf-16-le")) // 2


class DocumentWriter:
    """Appends streamed text at the end of a document, one applyEdit at a time (batched)."""

    def __init__(self, ls: CompanionServer, doc: TextDocument) -> None:
        self.ls, self.uri = ls, doc.uri
        enc = ls.workspace.position_encoding
        self.encoding = str(getattr(enc, "value", enc) or "utf-16")
        lines = doc.lines
        if not lines:
            self.line, self.char = 0, 0
        elif lines[-1].endswith("\n"):
            self.line, self.char = len(lines), 0
        else:
            self.line, self.char = len(lines) - 1, _units(lines[-1], self.encoding)
        self.pending = ""
        self.failed: str | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self._task = asyncio.ensure_future(self._run())

    def write(self, text: str) -> None:
        """Queue text to append."""
        self.pending += text
        self._wake.set()

    async def close(self) -> None:
        """Flush everything queued and stop."""
        self._closed = True
        self._wake.set()
        await asyncio.wait_for(asyncio.shield(self._task), FLUSH_TIMEOUT_S)

    def _advance(self, text: str) -> None:
        """Move the end position past inserted text."""
        if "\n" in text:
            self.line += text.count("\n")
            self.char = _units(text.rsplit("\n", 1)[1], self.encoding)
        else:
            self.char += _units(text, self.encoding)

    async def _run(self) -> None:
        """Send queued text until closed; a refused edit stops the writer."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.pending and self.failed is None:
                text, self.pending = self.pending, ""
                pos = lsp.Position(line=self.line, character=self.char)
                edit = lsp.WorkspaceEdit(
                    changes={self.uri: [lsp.TextEdit(range=lsp.Range(pos, pos), new_text=text)]}
                )
                params = lsp.ApplyWorkspaceEditParams(edit=edit, label="companion chat")
                result = await self.ls.workspace_apply_edit_async(params)
                if not result.applied:
                    self.failed = result.failure_reason or "the client refused the edit"
                self._advance(text)
                if self.pending:
                    self._wake.set()
            if self._closed and not self.pending:
                return


async def ask_in_document(ls: CompanionServer, uri: str) -> dict[str, Any]:
    """Answer the pending question of a chat file, streaming the answer into it."""
    from companion.llm import ChatRequest

    if uri not in ls.workspace.text_documents:
        raise InputError(f"{uri} is not open in the editor.", hint="open the chat file first.")
    doc = ls.workspace.get_text_document(uri)
    history, question, _ = parse_chat(doc.source)
    if question is None:
        raise InputError(
            "This chat file has no unanswered question.",
            hint="write your question under a new `## You` heading, then ask again.",
        )
    cid = "chatfile-" + hashlib.sha256(uri.encode()).hexdigest()[:16]
    request = ChatRequest(message=question, conversation_id=cid, history=history)
    writer = DocumentWriter(ls, doc)
    writer.write(("" if doc.source.endswith("\n") else "\n") + "\n## companion\n\n")
    progress = await server_stream(ls)

    class _Into(Stream):
        def delta(self, text: str) -> None:
            writer.write(text)
            progress.delta(text)

    tail = "\n\n## You\n\n"
    try:
        result = await run_chat(ls, request, _Into(ls, progress.token), "companion: answering")
    except CompanionError as exc:
        writer.write(f"\n\n> companion could not answer: {exc.text}{tail}")
        raise
    except asyncio.CancelledError:
        writer.write(f"\n\n> (cancelled){tail}")
        raise
    else:
        writer.write("\n" + "".join(f"\n> Note: {n}\n" for n in result["notes"]) + tail)
    finally:
        try:
            await writer.close()
        except (TimeoutError, Exception) as exc:  # the client went away; the answer is returned
            log.warning("could not finish writing into %s: %s", uri, type(exc).__name__)
    if writer.failed:
        result["notes"].append(f"The answer could not be written into the file: {writer.failed}")
    result["uri"] = uri
    return result


def register(server: CompanionServer) -> None:
    """Register `companion.chat.ask`."""

    @server.command("companion.chat.ask")
    @handles_errors
    async def ask(ls: CompanionServer, *args: Any) -> dict[str, Any]:
        """Answer the last question of a `*.chat.md` document, streaming into the document."""
        spec = plain(args[0]) if len(args) == 1 else None
        uri = spec.get("uri") if isinstance(spec, dict) else None
        if not isinstance(uri, str):
            raise InputError("companion.chat.ask takes [{uri}].", hint="pass the chat file URI.")
        return await ask_in_document(ls, uri)
