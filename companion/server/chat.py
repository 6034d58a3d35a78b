"""`companion/chat` (streamed over `$/progress`) and `companion.chat.explain`; chat-in-file is
in `chat_file`. The engine is companion.llm; this module only adapts it.
See docs/protocol.md for the wire format.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp

from companion.errors import InputError
from companion.server.core import CompanionServer, handles_errors

if TYPE_CHECKING:  # the chat engine loads on the first chat, not at server start
    from companion.llm import ChatRequest, ChatService

log = logging.getLogger("companion.server.chat")
METHOD = "companion/chat"
EXPLAIN_KINDS = {"architecture": "explain_architecture", "evidence": "explain_evidence"}


def service(ls: CompanionServer) -> ChatService:
    """The chat service (conversations, SDK clients) of this server."""
    if ls.chat_service is None:
        from companion.llm import ChatService

        ls.chat_service = ChatService()
    return ls.chat_service


def plain(value: Any) -> Any:
    """pygls hands custom params over as namedtuples; turn them back into JSON values."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class Stream:
    """`$/progress` on one token: begin, a report per text delta, end. No token: silent."""

    def __init__(self, ls: CompanionServer, token: str | int | None) -> None:
        self.ls, self.token = ls, token

    def _send(self, value: dict[str, Any]) -> None:
        if self.token is not None:
            self.ls.progress(lsp.ProgressParams(token=self.token, value=value))

    def begin(self, title: str) -> None:
        """Start the progress."""
        self._send({"kind": "begin", "title": title, "cancellable": True})

    def delta(self, text: str) -> None:
        """One streamed piece of the answer."""
        self._send({"kind": "report", "delta": text})

    def status(self, message: str) -> None:
        """A status line (e.g. which tool runs) without answer text."""
        self._send({"kind": "report", "message": message})

    def end(self, message: str = "done") -> None:
        """Finish the progress."""
        self._send({"kind": "end", "message": message})


def parse_request(params: Any) -> tuple[ChatRequest, str | int | None]:
    """Validate `companion/chat` params into a ChatRequest plus the workDoneToken."""
    from companion.llm import ChatRequest, DocumentContext

    p = plain(params)
    if not isinstance(p, dict):
        raise InputError(
            "companion/chat takes {message, conversationId?, context?, workDoneToken?}.",
            hint="send the question as params.message.",
        )
    token = p.get("workDoneToken")
    if token is not None and not isinstance(token, str | int):
        raise InputError("workDoneToken must be a string or an integer.", hint="send a string.")
    message = p.get("message")
    if not isinstance(message, str):
        raise InputError("companion/chat needs params.message (a string).", hint="send a question.")
    cid = p.get("conversationId")
    if cid is not None and not isinstance(cid, str):
        raise InputError("conversationId must be a string.", hint="omit it to start a new chat.")
    request = ChatRequest(
        message=message, conversation_id=cid, context=DocumentContext.from_json(p.get("context"))
    )
    return request, token


async def run_chat(
    ls: CompanionServer, request: ChatRequest, stream: Stream, title: str
) -> dict[str, Any]:
    """Run one chat turn with progress on `stream`; returns the wire result."""
    stream.begin(title)
    outcome = "cancelled"
    try:
        result = await service(ls).chat(
            request, ls.settings, ls.roots(), on_delta=stream.delta, on_status=stream.status
        )
        outcome = "done"
        return result.to_wire()
    except BaseException as exc:
        outcome = "cancelled" if isinstance(exc, asyncio.CancelledError) else "failed"
        raise
    finally:
        stream.end(outcome)


async def server_stream(ls: CompanionServer) -> Stream:
    """A Stream on a server-created token when the client supports work-done progress."""
    return Stream(ls, await ls.progress_token())


def chat_markdown(question: str, answer: str, notes: list[str]) -> str:
    """A `*.chat.md` document holding one exchange, ready for a follow-up question."""
    from companion.llm.context import template

    head = template("chat_file").split("\n## You", 1)[0].rstrip()
    note_text = "".join(f"\n> Note: {n}\n" for n in notes)
    return f"{head}\n\n## You\n\n{question}\n\n## companion\n\n{answer}\n{note_text}\n## You\n\n"


def register(server: CompanionServer) -> None:
    """Register `companion/chat` and the chat commands."""

    @server.feature(METHOD)
    @handles_errors
    async def chat(ls: CompanionServer, params: Any) -> dict[str, Any]:
        request, token = parse_request(params)
        return await run_chat(ls, request, Stream(ls, token), "companion chat")

    @server.command("companion.chat.explain")
    @handles_errors
    async def explain(ls: CompanionServer, *args: Any) -> dict[str, Any]:
        """Open a chat seeded with a document: an architecture or a piece of evidence."""
        spec = plain(args[0]) if len(args) == 1 else None
        kind = spec.get("kind") if isinstance(spec, dict) else None
        uri = spec.get("uri") if isinstance(spec, dict) else None
        if not isinstance(uri, str) or kind not in EXPLAIN_KINDS:
            raise InputError(
                "companion.chat.explain takes [{uri, kind: 'architecture' | 'evidence'}].",
                hint="pass the document URI and what to explain.",
            )
        from companion.llm import ChatRequest, DocumentContext
        from companion.llm.context import render

        question = f"Explain this {kind}."
        seed = render(EXPLAIN_KINDS[kind], uri=uri).strip()
        opened = ls.workspace.text_documents.get(uri)
        text = opened.source if opened is not None else None  # else the engine reads the file
        request = ChatRequest(
            message=question, seed=seed, context=DocumentContext(uri=uri, text=text)
        )
        result = await run_chat(ls, request, await server_stream(ls), f"companion: {question}")
        name = Path(uri).name or kind
        md = chat_markdown(f"{question} ({name})", result["text"], result["notes"])
        result["uri"] = ls.open_result(f"explain {kind} {name}", md, ".chat.md", fresh=True)
        return result
