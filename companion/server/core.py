"""The language server object: settings, tool execution off the event loop, progress, results."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from lsprotocol import types as lsp
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import to_fs_path

from companion import __version__
from companion.errors import Cancelled, CompanionError, NotRecordedError
from companion.settings import Settings
from companion.tools import ToolContext, ToolResult, get_tool

if TYPE_CHECKING:
    from companion.llm import ChatService

log = logging.getLogger("companion.server")
P = ParamSpec("P")
R = TypeVar("R")

# JSON-RPC code for "request failed" (LSP 3.17); `data.kind` carries the CompanionError kind.
REQUEST_FAILED = -32803


def user_error(exc: CompanionError) -> JsonRpcException:
    """Turn a CompanionError into a JSON-RPC error response with a clean message."""
    return JsonRpcException(message=exc.text, code=REQUEST_FAILED, data={"kind": exc.kind})


def handles_errors(
    func: Callable[P, Awaitable[R]],
) -> Callable[P, Awaitable[R]]:
    """Decorator: CompanionError -> error response; other exceptions stay bugs (logged)."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await func(*args, **kwargs)
        except CompanionError as exc:
            raise user_error(exc) from None

    return wrapper


class _Rejected:
    """A message that failed to deserialize and has already been answered."""

    jsonrpc = "rejected"


class CompanionProtocol(LanguageServerProtocol):
    """pygls drops requests whose params do not deserialize; answer them with InvalidParams."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        """Deserialize; a request with bad params gets an error response instead of silence."""
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data.get("id"), int | str) and "method" in data:
                method = data.get("method")
                error = JsonRpcInvalidParams(f"Invalid params for {method!r}: {exc.__cause__}")
                self._send_response(data["id"], error=error.to_response_error())
            return _Rejected()

    def handle_message(self, message: Any) -> None:
        """Skip messages already answered as invalid; answer requests sent after shutdown."""
        if isinstance(message, _Rejected):
            return
        if not hasattr(message, "jsonrpc"):  # valid JSON but not an object: [1, 2], 42, "x"
            self.reply_error(None, JsonRpcInvalidRequest("A JSON-RPC message is an object."))
            return
        method = getattr(message, "method", None)
        if self._shutdown and method not in (None, lsp.EXIT) and hasattr(message, "id"):
            error = JsonRpcInvalidRequest(f"The server is shut down; {method!r} refused.")
            self.reply_error(message.id, error)
            return
        super().handle_message(message)

    def reply_error(self, msg_id: int | str | None, error: JsonRpcException) -> None:
        """Send an error response (id null when the request could not be read)."""
        payload = {"code": error.code, "message": error.message}
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": payload})


class CompanionServer(LanguageServer):
    """pygls server holding settings; every feature module registers onto one instance."""

    def __init__(self) -> None:
        super().__init__(
            "companion",
            __version__,
            text_document_sync_kind=lsp.TextDocumentSyncKind.Full,
            protocol_cls=CompanionProtocol,
        )
        self.protocol: CompanionProtocol
        self.settings = Settings()
        self.results_dir: Path | None = None
        self.chat_service: ChatService | None = None  # created by the chat feature on first use
        self.event_loop: asyncio.AbstractEventLoop | None = None  # set at initialize
        self._background: set[asyncio.Future[Any]] = set()

    def report_server_error(self, error: Exception, source: Any) -> None:
        """An unreadable frame gets a -32700 Parse error reply; other errors as pygls does."""
        if isinstance(error, json.JSONDecodeError | UnicodeDecodeError | RecursionError):
            self.protocol.reply_error(None, JsonRpcParseError(f"Parse error: {error}"[:300]))
            return
        super().report_server_error(error, source)

    def roots(self) -> list[Path]:
        """Workspace folders as paths (root_uri when the client sent no folders)."""
        folders = list(self.workspace.folders.values())
        uris = [f.uri for f in folders] or (
            [self.workspace.root_uri] if self.workspace.root_uri else []
        )
        return [Path(p) for u in uris if (p := to_fs_path(u))]

    def tool_context(
        self, cancel: threading.Event | None = None, progress: Any = None, confine: bool = False
    ) -> ToolContext:
        """A ToolContext bound to this server's settings and workspace."""
        from companion.toolbox import context

        ctx = context(
            self.settings, self.roots(), confine=confine, cancel=cancel or threading.Event()
        )
        if progress is not None:
            ctx.progress = progress
        return ctx

    async def run_tool(self, name: str, args: object, title: str | None = None) -> ToolResult:
        """Run a tool in a worker thread with work-done progress; cancellation stops it."""
        from companion.toolbox import run_tool

        tool = get_tool(name)
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        reporter = await self._progress(title or f"companion: {tool.name}", cancel)
        ctx = self.tool_context(cancel, reporter.report if reporter else None)
        future = loop.run_in_executor(None, run_tool, tool.name, args, ctx)
        try:
            return await asyncio.shield(future)
        except NotRecordedError as exc:
            self.notify_user(f"companion: {exc.text}")
            if isinstance(exc.result, ToolResult):
                return exc.result
            raise
        except asyncio.CancelledError:
            cancel.set()  # the worker checks this between chunks and raises Cancelled
            raise
        finally:
            if reporter is not None:
                reporter.end("cancelled" if cancel.is_set() else "done")

    async def progress_token(self) -> str | None:
        """A server-created work-done progress token, or None if the client has no progress."""
        caps = self.client_capabilities.window
        if caps is None or not caps.work_done_progress:
            return None
        token = str(uuid.uuid4())
        try:
            await asyncio.wait_for(self.work_done_progress.create_async(token), 5)
        except Exception:  # the client refused or timed out: the work goes on without progress
            return None
        return token

    async def _progress(self, title: str, cancel: threading.Event) -> _Reporter | None:
        """Begin a cancellable work-done progress for a tool run, if the client supports it."""
        token = await self.progress_token()
        if token is None:
            return None
        fut = self.work_done_progress.tokens.get(token)
        if fut is not None:
            fut.add_done_callback(lambda f: cancel.set() if f.cancelled() else None)
        self.work_done_progress.begin(
            token, lsp.WorkDoneProgressBegin(title=title, cancellable=True, percentage=0)
        )
        return _Reporter(self, token, asyncio.get_running_loop())

    def open_result(self, title: str, text: str, suffix: str = ".md", fresh: bool = False) -> str:
        """Write a result file and ask the client to show it; returns its URI.

        The name comes from the title and the content's digest, so showing the same result
        twice reuses one file; `fresh` names it uniquely (a chat file the user goes on editing).
        """
        base = self.results_dir or (self.settings.data_dir() / "results")
        base.mkdir(parents=True, exist_ok=True)
        slug = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")[:60]
        tag = uuid.uuid4().hex[:8] if fresh else hashlib.sha256(text.encode()).hexdigest()[:8]
        path = base / f"{slug}-{tag}{suffix}"
        path.write_text(text, encoding="utf-8")
        uri = path.as_uri()
        caps = self.client_capabilities.window
        if caps is not None and caps.show_document is not None:
            self.spawn(
                self.window_show_document_async(lsp.ShowDocumentParams(uri=uri, take_focus=True))
            )
        return uri

    def spawn(self, awaitable: Awaitable[Any]) -> None:
        """Run a request to the client in the background, keeping a reference until it ends."""
        self._background.add(task := asyncio.ensure_future(awaitable))
        task.add_done_callback(self._background.discard)

    def notify_user(self, message: str, kind: lsp.MessageType = lsp.MessageType.Warning) -> None:
        """Show a message to the user (window/showMessage)."""
        self.window_show_message(lsp.ShowMessageParams(type=kind, message=message))


class _Reporter:
    """Thread-safe bridge from a worker's progress callback to `$/progress` reports."""

    def __init__(self, ls: CompanionServer, token: str, loop: asyncio.AbstractEventLoop) -> None:
        self.ls, self.token, self.loop = ls, token, loop
        self.ended = False

    def report(self, message: str, fraction: float | None) -> None:
        """Called from the worker thread."""
        pct = None if fraction is None else max(0, min(100, int(fraction * 100)))
        value = lsp.WorkDoneProgressReport(message=message, percentage=pct, cancellable=True)
        self.loop.call_soon_threadsafe(self._send, value)

    def _send(self, value: lsp.WorkDoneProgressReport) -> None:
        """On the event loop: a worker still winding down after a cancel reports nothing."""
        if not self.ended:
            self.ls.work_done_progress.report(self.token, value)

    def end(self, message: str) -> None:
        """Called on the event loop when the job ends; no report follows it."""
        self.ended = True
        self.ls.work_done_progress.end(self.token, lsp.WorkDoneProgressEnd(message=message))


__all__ = ["Cancelled", "CompanionServer", "handles_errors", "user_error"]
