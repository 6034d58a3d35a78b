"""One chat turn: assemble the prompt, stream the answer, run the read-only tools it asks for.

`ChatService` keeps conversations by id (in memory, and in the audit store when it is on),
reuses one SDK client per endpoint, and bounds the conversations kept in memory; the turn's
own bounds (tool rounds and calls, context retries) live in companion/llm/turn.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from companion.errors import CompanionError, InputError
from companion.llm.budget import TokenBudget
from companion.llm.client import ChatClient
from companion.llm.context import DocumentContext, build_system_prompt
from companion.llm.endpoint import (
    DISCOVERY_TIMED_OUT,
    Endpoint,
    discover_context_length,
    resolve_endpoint,
)
from companion.llm.schemas import ChatResult
from companion.llm.turn import Delta, Status, TurnLoop
from companion.settings import Settings
from companion.toolbox import run_tool
from companion.tools import ToolContext

log = logging.getLogger("companion.llm")
MAX_CONVERSATIONS = 64
MAX_MESSAGE_CHARS = 200_000


def _ignore(_: str) -> None:
    """Discard a callback value."""


@dataclass
class ChatRequest:
    """One user turn: the message, its conversation, the editor context, an optional seed."""

    message: str
    conversation_id: str | None = None
    context: DocumentContext | None = None
    seed: str | None = None
    history: list[dict[str, Any]] | None = None  # given by the caller (a chat file): used as is

    def __post_init__(self) -> None:
        if not isinstance(self.message, str) or not self.message.strip():
            raise InputError("The chat message is empty.", hint="type a question and send it.")
        if len(self.message) > MAX_MESSAGE_CHARS:
            raise InputError(
                f"The chat message is {len(self.message)} characters long "
                f"(limit {MAX_MESSAGE_CHARS}).",
                hint="send the document as context (uri/range) instead of pasting it.",
            )


class ChatService:
    """Conversations by id plus the tool-calling loop; one instance per server or CLI run."""

    def __init__(self) -> None:
        self._conversations: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._clients: dict[tuple[Any, ...], ChatClient] = {}

    async def close(self) -> None:
        """Close every SDK client (and its connection pool)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    def _client(self, endpoint: Endpoint, settings: Settings) -> ChatClient:
        """A cached client for this endpoint and these retry/timeout settings."""
        key = (endpoint, settings.llm_timeout_s, settings.llm_max_retries)
        if key not in self._clients:
            self._clients[key] = ChatClient(endpoint, settings)
        return self._clients[key]

    def _history(self, settings: Settings, conversation_id: str | None) -> tuple[str, list[Any]]:
        """The id and earlier messages of a conversation (new id when none is given)."""
        if conversation_id is None:
            return uuid.uuid4().hex, []
        if not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= 200:
            raise InputError(
                "conversationId must be a non-empty string (at most 200 characters).",
                hint="omit conversationId to start a new conversation.",
            )
        if conversation_id in self._conversations:
            self._conversations.move_to_end(conversation_id)
            return conversation_id, list(self._conversations[conversation_id])
        saved = _load_saved(settings, conversation_id)
        if saved is None:
            raise InputError(
                f"Unknown conversation {conversation_id!r}.",
                hint="omit conversationId to start a new conversation.",
            )
        return conversation_id, saved

    def _remember(self, settings: Settings, cid: str, history: list[dict[str, Any]]) -> str | None:
        """Keep the conversation in memory and in the store; a note if saving failed."""
        self._conversations[cid] = history
        self._conversations.move_to_end(cid)
        while len(self._conversations) > MAX_CONVERSATIONS:
            self._conversations.popitem(last=False)
        if not settings.store_enabled:
            return None
        try:
            from companion.store import save_conversation

            save_conversation(settings, cid, history)
        except CompanionError as exc:
            return f"The conversation was not saved to the audit store: {exc.message}"
        return None

    async def chat(
        self,
        request: ChatRequest,
        settings: Settings,
        roots: list[Path],
        on_delta: Delta = _ignore,
        on_status: Status = _ignore,
    ) -> ChatResult:
        """Answer one user turn, streaming text to `on_delta`; CompanionError on failure."""
        endpoint = resolve_endpoint(settings)
        if request.history is not None:
            cid, history = request.conversation_id or uuid.uuid4().hex, list(request.history)
        else:
            cid, history = self._history(settings, request.conversation_id)
        client = self._client(endpoint, settings)
        context_length, source = await discover_context_length(
            endpoint, settings.llm_context_length, settings.llm_discovery_timeout_s
        )
        budget = TokenBudget(endpoint.model, context_length, settings.llm_max_output_tokens)
        cancel = threading.Event()
        ctx = ToolContext(
            settings=settings, roots=roots, confine=True, cancel=cancel, runner=run_tool
        )
        notes: list[str] = []
        if DISCOVERY_TIMED_OUT in source:
            notes.append(f"The context length was not discovered: using {source}.")

        async def system_for(fit: TokenBudget) -> dict[str, Any]:
            system = await asyncio.to_thread(build_system_prompt, fit, ctx, request.context)
            notes.extend(n for n in system.notes if n not in notes)
            return {"role": "system", "content": system.text}

        user_text = request.message if not request.seed else f"{request.seed}\n\n{request.message}"
        turn: list[dict[str, Any]] = [{"role": "user", "content": user_text}]
        run = TurnLoop(client, budget, ctx, on_delta, on_status)
        try:
            prefix = [await system_for(budget), *history]
            text = await run.loop(prefix, turn, system_for)
        except asyncio.CancelledError:
            cancel.set()  # a tool running in a worker thread stops at its next check
            raise
        for note in run.notes:
            if note not in notes:
                notes.append(note)
        saved = self._remember(settings, cid, [*history, *turn])
        notes += [saved] if saved else []
        log.info(
            "chat %s: %d request(s), %d tool call(s), context %d tokens (%s)",
            cid[:8], run.requests, len(run.records), context_length, source,
        )  # fmt: skip
        return ChatResult(
            conversation_id=cid,
            text=text,
            tool_calls=run.records,
            usage=run.usage,
            notes=notes,
            model=endpoint.model,
            context_length=run.learned_window or context_length,
        )


def _load_saved(settings: Settings, cid: str) -> list[Any] | None:
    """A transcript from the store, or None (also when the store is off or unreadable)."""
    if not settings.store_enabled:
        return None
    try:
        from companion.store import load_conversation

        return load_conversation(settings, cid)
    except CompanionError as exc:
        log.warning("could not load conversation %s: %s", cid[:8], exc.message)
        return None
