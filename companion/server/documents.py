"""Text document sync, diagnostics, hover, code lens and code actions, fanned out to providers."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import TypeVar

from lsprotocol import types as lsp
from pygls.workspace import TextDocument

from companion.errors import CompanionError
from companion.server.core import CompanionServer
from companion.server.providers import Provider

log = logging.getLogger("companion.server.documents")


def providers() -> tuple[Provider, ...]:
    """The document providers; imported on first use because they load the engines."""
    from companion.server import chat_provider, config_provider, evidence_provider

    return (chat_provider.PROVIDER, config_provider.PROVIDER, evidence_provider.PROVIDER)


_pending: dict[str, asyncio.Task[None]] = {}
# Generous: a provider past this is stuck on hostile input; its answer is dropped, not awaited.
DEADLINE = 20.0
T = TypeVar("T")


async def ask(p: Provider, what: str, call: Callable[[], T], empty: T) -> T:
    """Run one provider call off the event loop with a deadline; any failure answers `empty`.

    A CompanionError is re-raised for the caller to show; any other exception is a bug,
    logged with its traceback, and never fails the whole feature for the other providers.
    """
    try:
        return await asyncio.wait_for(asyncio.to_thread(call), DEADLINE)
    except CompanionError:
        raise
    except TimeoutError:
        log.error("%s %s: no answer within %.0f s; answered empty", p.name, what, DEADLINE)
    except Exception:
        log.exception("%s %s failed; answered empty", p.name, what)
    return empty


async def _matching(doc: TextDocument) -> list[Provider]:
    """Providers that handle this document; a provider error never hides the others."""
    out = []
    for p in providers():
        try:
            if await ask(p, "matches", functools.partial(p.matches, doc), False):
                out.append(p)
        except CompanionError as exc:
            log.warning("%s: %s", p.name, exc.text)
    return out


async def _each(doc: TextDocument, what: str, call: Callable[[Provider], list[T]]) -> list[T]:
    """Concatenate one list-valued provider call over the matching providers."""
    out: list[T] = []
    for p in await _matching(doc):
        try:
            out += await ask(p, what, functools.partial(call, p), [])
        except CompanionError as exc:
            log.warning("%s %s: %s", p.name, what, exc.text)
    return out


def _error_diagnostic(exc: CompanionError) -> lsp.Diagnostic:
    """A CompanionError as a diagnostic on the first character."""
    return lsp.Diagnostic(
        range=lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)),
        message=exc.text,
        severity=lsp.DiagnosticSeverity.Error,
        source="companion",
    )


async def publish(ls: CompanionServer, uri: str, delay: float = 0.0) -> None:
    """Compute diagnostics off the event loop and publish them (fresh, even after a failure)."""
    if delay:
        await asyncio.sleep(delay)  # debounce bursts of edits
    doc = ls.workspace.get_text_document(uri)
    found: list[lsp.Diagnostic] = []
    for p in await _matching(doc):
        try:
            found += await ask(p, "diagnostics", functools.partial(p.diagnostics, ls, doc), [])
        except CompanionError as exc:
            found.append(_error_diagnostic(exc))
    ls.text_document_publish_diagnostics(
        lsp.PublishDiagnosticsParams(uri=uri, diagnostics=found, version=doc.version)
    )


async def hover_of(ls: CompanionServer, doc: TextDocument, pos: lsp.Position) -> lsp.Hover | None:
    """The first matching provider's hover."""
    for p in await _matching(doc):
        try:
            h = await ask(p, "hover", functools.partial(p.hover, ls, doc, pos), None)
        except CompanionError as exc:
            log.warning("%s hover: %s", p.name, exc.text)
            continue
        if h is not None:
            return h
    return None


def _schedule(ls: CompanionServer, uri: str, delay: float) -> None:
    """(Re)start the diagnostics task for a document."""
    if (old := _pending.pop(uri, None)) is not None:
        old.cancel()
    _pending[uri] = asyncio.ensure_future(publish(ls, uri, delay))


def register(server: CompanionServer) -> None:
    """Register document features."""

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: CompanionServer, params: lsp.DidOpenTextDocumentParams) -> None:
        _schedule(ls, params.text_document.uri, 0.0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: CompanionServer, params: lsp.DidChangeTextDocumentParams) -> None:
        _schedule(ls, params.text_document.uri, 0.15)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: CompanionServer, params: lsp.DidSaveTextDocumentParams) -> None:
        _schedule(ls, params.text_document.uri, 0.0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(ls: CompanionServer, params: lsp.DidCloseTextDocumentParams) -> None:
        if (old := _pending.pop(params.text_document.uri, None)) is not None:
            old.cancel()
        ls.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
        )

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    async def hover(ls: CompanionServer, params: lsp.HoverParams) -> lsp.Hover | None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        return await hover_of(ls, doc, params.position)

    @server.feature(lsp.TEXT_DOCUMENT_CODE_LENS)
    async def code_lens(ls: CompanionServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        return await _each(doc, "code lens", lambda p: p.code_lenses(ls, doc))

    @server.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION,
        lsp.CodeActionOptions(
            code_action_kinds=[
                lsp.CodeActionKind.QuickFix,
                lsp.CodeActionKind.Source,
                lsp.CodeActionKind.Refactor,
            ]
        ),
    )
    async def code_action(
        ls: CompanionServer, params: lsp.CodeActionParams
    ) -> list[lsp.CodeAction]:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        return await _each(doc, "code actions", lambda p: p.code_actions(ls, doc, params))
