"""One chat turn: assemble the prompt, stream the answer, run the read-only tools it asks for.

`ChatService` keeps conversations by id (in memory, and in the audit store when it is on),
reuses one SDK client per endpoint, and bounds everything: tool rounds, tool output size,
conversations kept in memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from companion.errors import CompanionError, InputError
from companion.llm.budget import TokenBudget
from companion.llm.client import ChatClient, Completion, RawToolCall
from companion.llm.context import DocumentContext, build_system_prompt
from companion.llm.endpoint import Endpoint, discover_context_length, resolve_endpoint
from companion.llm.models import ChatResult, ToolCallRecord, Usage
from companion.settings import Settings
from companion.toolbox import LLM_SCHEMAS, load_tools, run_tool
from companion.tools import Tool, ToolContext, wire_name

log = logging.getLogger("companion.llm")
MAX_CONVERSATIONS = 64
MAX_MESSAGE_CHARS = 200_000

Delta = Callable[[str], None]
Status = Callable[[str], None]


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


def cap_text(text: str, limit: int) -> str:
    """Keep at most `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... truncated: {len(text) - limit} more characters ...]"


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
            endpoint, settings.llm_context_length
        )
        budget = TokenBudget(endpoint.model, context_length, settings.llm_max_output_tokens)
        cancel = threading.Event()
        ctx = ToolContext(
            settings=settings, roots=roots, confine=True, cancel=cancel, runner=run_tool
        )
        system = await asyncio.to_thread(build_system_prompt, budget, ctx, request.context)
        notes = list(system.notes)
        user_text = request.message if not request.seed else f"{request.seed}\n\n{request.message}"
        turn: list[dict[str, Any]] = [{"role": "user", "content": user_text}]
        run = _Turn(self, client, budget, ctx, on_delta, on_status)
        try:
            text = await run.loop([{"role": "system", "content": system.text}, *history], turn)
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
            context_length=context_length,
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


class _Turn:
    """The state of one turn's loop: requests made, tool calls, usage, notes."""

    def __init__(
        self,
        service: ChatService,
        client: ChatClient,
        budget: TokenBudget,
        ctx: ToolContext,
        on_delta: Delta,
        on_status: Status,
    ) -> None:
        self.client, self.budget, self.ctx = client, budget, ctx
        self.on_delta, self.on_status = on_delta, on_status
        self.records: list[ToolCallRecord] = []
        self.usage = Usage()
        self.notes: list[str] = []
        self.requests = 0
        self.shown = ""
        self._separate = False

    def _delta(self, text: str) -> None:
        """Forward streamed text, remembering what the user has seen."""
        if self._separate and text:
            self._separate = False  # a blank line between the text of successive rounds
            self.shown += "\n\n"
            self.on_delta("\n\n")
        self.shown += text
        self.on_delta(text)

    async def loop(self, prefix: list[dict[str, Any]], turn: list[dict[str, Any]]) -> str:
        """Request, run tools, repeat (bounded); returns the text the user saw."""
        settings = self.ctx.settings
        schemas = LLM_SCHEMAS.get() if settings.chat_max_tool_rounds > 0 else []
        if schemas and self.budget.count_tools(schemas) > self.budget.prompt_limit // 2:
            # Small contexts (e.g. Ollama's default) cannot hold every tool declaration.
            need, window = self.budget.count_tools(schemas), self.budget.context_length
            self.notes.append(
                f"Tools were not offered: their declarations need {need} tokens of a "
                f"{window}-token context window. Use a model with a longer context for "
                "tool-grounded answers."
            )
            schemas = []
        tools = {t.wire_name: t for t in load_tools().values() if t.read_only}
        for round_no in range(settings.chat_max_tool_rounds + 1):
            offer = schemas if round_no < settings.chat_max_tool_rounds and schemas else None
            fitted = self.budget.fit([*prefix, *turn], offer)
            self.notes += [n for n in fitted.notes if n not in self.notes]
            self._separate = bool(self.shown)
            completion = await self.client.complete(
                fitted.messages, offer, self.budget.reserve_output, self._delta
            )
            self.requests += 1
            self._count(completion, fitted.prompt_tokens)
            if completion.finish_reason == "length":
                self.notes.append("The answer was cut off at the output token limit.")
            if not completion.tool_calls or offer is None:
                turn.append({"role": "assistant", "content": completion.text})
                if completion.tool_calls:
                    self.notes.append(
                        f"The model asked for more tools after {round_no} round(s); the limit "
                        f"is chat_max_tool_rounds={settings.chat_max_tool_rounds}."
                    )
                return self.shown
            turn.append(_assistant_with_calls(completion))
            for call in completion.tool_calls:
                self.on_status(f"calling {call.name}")
                record, content = await self._run(call, tools)
                self.records.append(record)
                turn.append({"role": "tool", "tool_call_id": call.id, "content": content})
        raise AssertionError("unreachable: the last round offers no tools")

    def _count(self, completion: Completion, prompt_estimate: int) -> None:
        """Add a request's usage (counted with tiktoken when the endpoint sent none)."""
        prompt, done = completion.prompt_tokens, completion.completion_tokens
        if prompt is None or done is None:
            self.usage.estimated = True
            prompt = prompt_estimate if prompt is None else prompt
            if done is None:
                args = "".join(c.name + c.arguments for c in completion.tool_calls)
                done = self.budget.count_text(completion.text + args)
        self.usage.prompt_tokens += prompt
        self.usage.completion_tokens += done
        self.usage.total_tokens = self.usage.prompt_tokens + self.usage.completion_tokens

    async def _run(self, call: RawToolCall, tools: dict[str, Tool]) -> tuple[ToolCallRecord, str]:
        """Run one requested tool; problems go back to the model as an error it can read."""
        record = ToolCallRecord(name=call.name, arguments=call.arguments)
        tool = tools.get(call.name) or tools.get(wire_name(call.name))
        limit = self.ctx.settings.chat_tool_output_chars
        if tool is None:
            known = ", ".join(sorted(tools)) or "none"
            record.error = f"Unknown tool {call.name!r}. Available tools: {known}."
            return record, json.dumps({"error": record.error})
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError as exc:
            record.error = f"The arguments are not valid JSON ({exc}); send a JSON object."
            return record, json.dumps({"error": record.error})
        record.arguments = args
        record.name = tool.name  # report the registry name (audit.query), not the wire name
        try:
            result = await asyncio.to_thread(run_tool, tool.name, args, self.ctx)
        except CompanionError as exc:
            record.error = exc.text
            return record, json.dumps({"error": exc.text})
        text = result.model_dump_json()
        record.result = (
            result.model_dump(mode="json") if len(text) <= limit else cap_text(text, limit)
        )
        return record, cap_text(text, limit)


def _json_or_empty(text: str) -> str:
    """Arguments to echo back: servers that parse them choke on invalid JSON, so send {}."""
    try:
        json.loads(text)
    except ValueError:
        return "{}"
    return text


def _assistant_with_calls(completion: Completion) -> dict[str, Any]:
    """The assistant message that requested tools, as the API expects it back."""
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": a}}
        for c in completion.tool_calls
        for a in [_json_or_empty(c.arguments)]
    ]
    return {"role": "assistant", "content": completion.text or None, "tool_calls": calls}
