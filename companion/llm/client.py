"""The OpenAI-compatible client: streamed completions over the openai SDK, errors made readable.

Works with OpenAI, vLLM, Ollama and llama.cpp's server (all speak /v1/chat/completions).
Retries are ours, not the SDK's, so that every message counts the tries really made: 429
(honouring Retry-After up to a minute), 5xx, timeouts, and a stream that failed before any
text reached the user. Every answer is bounded in characters, wire bytes and seconds.
Closing a stream (including on cancellation) closes the upstream HTTP response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

from companion.llm.endpoint import Endpoint
from companion.llm.failures import Failure, describe, tries_text
from companion.llm.wire import CappedTransport, ResponseTooLarge, backoff_s, response_byte_limit
from companion.settings import Settings

log = logging.getLogger("companion.llm")
# The SDK and its HTTP stack log request details at DEBUG; keep them quiet whatever the level.
for _name in ("openai", "httpx", "httpx2", "httpcore", "httpcore2"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@dataclass
class RawToolCall:
    """A tool call as the model streamed it (arguments are unparsed JSON text)."""

    id: str
    name: str
    arguments: str


@dataclass
class Completion:
    """One assistant message: text, tool calls, usage (None if the endpoint sent none)."""

    text: str = ""
    tool_calls: list[RawToolCall] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    stopped: str | None = None  # why we stopped reading before the endpoint finished


class ChatClient:
    """AsyncOpenAI bound to one endpoint; `complete` streams one assistant message."""

    def __init__(self, endpoint: Endpoint, settings: Settings) -> None:
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        self.endpoint = endpoint
        self.settings = settings
        limit = response_byte_limit(settings.llm_max_answer_chars)
        self._sdk = AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=settings.llm_timeout_s,
            max_retries=0,  # retried in `complete`, which knows what the user already saw
            http_client=DefaultAsyncHttpxClient(transport=CappedTransport(limit)),
        )

    async def close(self) -> None:
        """Release the HTTP connection pool."""
        await self._sdk.close()

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        max_tokens: int,
        on_delta: Callable[[str], None],
    ) -> Completion:
        """Stream one completion; text deltas go to `on_delta`. Errors are EndpointError."""
        tries, whole = 0, False
        while True:
            tries += 1
            once = self._whole_once if whole else self._stream_once
            try:
                return await once(messages, tools, max_tokens, on_delta)
            except Failure as failure:
                last = tries > self.settings.llm_max_retries
                if last or not failure.retryable() or failure.waits_too_long():
                    raise describe(failure, self.endpoint, self.settings, tries) from None
                # A stream that ended empty says nothing; asked without streaming, servers
                # that fail silently mid-stream (llama-cpp-python on a too-long prompt) say why.
                whole = whole or failure.kind == "ended"
                wait = failure.wait_s if failure.wait_s is not None else backoff_s(tries)
                log.warning(
                    "LLM request failed (%s, %s); retrying in %.1f s",
                    failure.kind, tries_text(tries), wait,
                )  # fmt: skip
                await asyncio.sleep(wait)

    async def _stream_once(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        max_tokens: int,
        on_delta: Callable[[str], None],
    ) -> Completion:
        """One streamed request, bounded in time; the response is closed on every exit path."""
        kwargs = self._request(messages, tools, max_tokens)
        kwargs |= {"stream": True, "stream_options": {"include_usage": True}}
        out, calls, stream = Completion(), _Calls(), None
        try:
            async with asyncio.timeout(self.settings.llm_max_answer_s) as deadline:
                stream = await self._open(kwargs)
                await self._read(stream, out, calls, on_delta)
        except TimeoutError:
            if not deadline.expired():
                raise
            out.stopped = (
                f"The answer was stopped after llm_max_answer_s="
                f"{self.settings.llm_max_answer_s:g} s: the endpoint was still sending."
            )
        finally:
            # Also runs on asyncio cancellation: the upstream HTTP stream is closed here.
            if stream is not None:
                await stream.close()
        if out.stopped and not (out.text or calls.any()):
            raise Failure("too_slow" if "llm_max_answer_s" in out.stopped else "too_large")
        if out.stopped:
            return out  # tool calls cut mid-way are never run
        if out.finish_reason is None:
            raise Failure("ended", partial=len(out.text))
        out.tool_calls = calls.done()
        return out

    async def _whole_once(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        max_tokens: int,
        on_delta: Callable[[str], None],
    ) -> Completion:
        """One non-streamed request (same bounds); its text reaches `on_delta` in one piece."""
        try:
            async with asyncio.timeout(self.settings.llm_max_answer_s):
                response = await self._open(self._request(messages, tools, max_tokens))
        except TimeoutError:
            raise Failure("too_slow") from None
        if not response.choices:
            raise Failure("ended")
        choice, cap = response.choices[0], self.settings.llm_max_answer_chars
        out = Completion(text=(choice.message.content or "")[:cap])
        out.finish_reason = choice.finish_reason
        if response.usage is not None:
            out.prompt_tokens = response.usage.prompt_tokens
            out.completion_tokens = response.usage.completion_tokens
        for i, tc in enumerate(choice.message.tool_calls or []):
            fn = getattr(tc, "function", None)
            if fn is not None:
                out.tool_calls.append(RawToolCall(tc.id or f"call_{i}", fn.name, fn.arguments))
        if len(choice.message.content or "") > cap:
            out.stopped = f"The answer was cut at llm_max_answer_chars={cap} characters."
            out.tool_calls = []
        if out.text:
            on_delta(out.text)
        return out

    def _request(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, max_tokens: int
    ) -> dict[str, Any]:
        """The chat-completions arguments both request shapes share."""
        kwargs: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": messages,
            "max_tokens": max_tokens,
        }
        return kwargs | ({"tools": tools} if tools else {})

    async def _open(self, kwargs: dict[str, Any]) -> Any:
        """Send the request; a refusal becomes a Failure."""
        import openai

        try:
            return await self._sdk.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            raise Failure("status", exc) from None
        except openai.APITimeoutError as exc:
            raise Failure("timeout", exc) from None
        except openai.APIConnectionError as exc:
            # Refused at connect: not reached. Anything later: it answered, then broke off.
            reached = not isinstance(exc.__cause__, httpx2.ConnectError)
            raise Failure("dropped" if reached else "connect", exc) from None
        except ResponseTooLarge as exc:
            raise Failure("too_large", exc) from None
        except openai.OpenAIError as exc:
            raise Failure("other", exc) from None

    async def _read(
        self, stream: Any, out: Completion, calls: _Calls, on_delta: Callable[[str], None]
    ) -> None:
        """Consume the stream into `out`, stopping at the character and byte caps."""
        import openai

        cap = self.settings.llm_max_answer_chars
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    out.prompt_tokens = chunk.usage.prompt_tokens
                    out.completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices or []:
                    delta = choice.delta
                    text = (delta.content or "") if delta is not None else ""
                    room = cap - len(out.text) - calls.chars
                    if piece := text[: max(0, room)]:
                        out.text += piece
                        on_delta(piece)
                    calls.add((delta.tool_calls if delta is not None else None) or [])
                    if choice.finish_reason:
                        out.finish_reason = choice.finish_reason
                    if len(text) > room or len(out.text) + calls.chars > cap:
                        out.stopped = (
                            f"The answer was stopped at llm_max_answer_chars={cap} characters: "
                            "the endpoint was still sending."
                        )
                        return
        except ResponseTooLarge as exc:
            limit = exc.limit
            out.stopped = f"The answer was stopped after {limit} bytes on the wire (the cap "
            out.stopped += f"for llm_max_answer_chars={cap})."
        except openai.APITimeoutError as exc:
            raise Failure("timeout", exc, len(out.text)) from None
        except openai.APIConnectionError as exc:
            raise Failure("dropped", exc, len(out.text)) from None
        except openai.APIError as exc:
            raise Failure("stream_error", exc, len(out.text)) from None
        except (ValueError, OSError) as exc:
            raise Failure("malformed", exc, len(out.text)) from None


class _Calls:
    """Tool calls assembled from streamed fragments, with their size for the answer cap."""

    def __init__(self) -> None:
        self._by_index: dict[int, RawToolCall] = {}
        self.chars = 0

    def any(self) -> bool:
        """Whether any tool call has started."""
        return bool(self._by_index)

    def add(self, fragments: list[Any]) -> None:
        """Merge one chunk's tool-call fragments."""
        for tc in fragments:
            call = self._by_index.setdefault(tc.index, RawToolCall("", "", ""))
            call.id = tc.id or call.id
            if tc.function is not None:
                name, args = tc.function.name or "", tc.function.arguments or ""
                call.name += name
                call.arguments += args
                self.chars += len(name) + len(args)

    def done(self) -> list[RawToolCall]:
        """The calls in index order, with an id for each."""
        return [
            RawToolCall(c.id or f"call_{i}", c.name, c.arguments)
            for i, c in sorted(self._by_index.items())
        ]
