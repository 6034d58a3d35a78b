"""The OpenAI-compatible client: streamed completions over the openai SDK, errors made readable.

Works with OpenAI, vLLM, Ollama and llama.cpp's server (all speak /v1/chat/completions).
The SDK does its own retries (429 honouring retry-after, 5xx, timeouts); a stream that
breaks before any text arrived is retried here too. Closing a stream (including on
cancellation) closes the upstream HTTP response.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from companion.errors import EndpointError
from companion.llm.endpoint import Endpoint
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


class _Broken(Exception):
    """A stream broke before any text reached the user: safe to retry."""

    def __init__(self, error: EndpointError) -> None:
        super().__init__(error.text)
        self.error = error


class ChatClient:
    """AsyncOpenAI bound to one endpoint; `complete` streams one assistant message."""

    def __init__(self, endpoint: Endpoint, settings: Settings) -> None:
        from openai import AsyncOpenAI

        self.endpoint = endpoint
        self.settings = settings
        self._sdk = AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
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
        attempts = 1 + self.settings.llm_max_retries
        for attempt in range(attempts):
            try:
                return await self._stream_once(messages, tools, max_tokens, on_delta)
            except _Broken as broken:
                if attempt + 1 >= attempts:
                    raise broken.error from None
                log.warning("LLM stream broke before any text (%s); retrying", broken.error.message)
        raise AssertionError("unreachable")

    async def _stream_once(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        max_tokens: int,
        on_delta: Callable[[str], None],
    ) -> Completion:
        """One streamed request; the response is closed on every exit path."""
        import openai

        kwargs: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": max_tokens,
        }
        if tools:
            kwargs["tools"] = tools
        try:
            stream = await self._sdk.chat.completions.create(**kwargs)
        except openai.OpenAIError as exc:
            raise self._error(exc, streamed=False) from None
        out = Completion()
        calls: dict[int, RawToolCall] = {}
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    out.prompt_tokens = chunk.usage.prompt_tokens
                    out.completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices or []:
                    delta = choice.delta
                    if delta is not None and delta.content:
                        out.text += delta.content
                        on_delta(delta.content)
                    for tc in (delta.tool_calls if delta is not None else None) or []:
                        call = calls.setdefault(tc.index, RawToolCall("", "", ""))
                        call.id = tc.id or call.id
                        if tc.function is not None:
                            call.name += tc.function.name or ""
                            call.arguments += tc.function.arguments or ""
                    if choice.finish_reason:
                        out.finish_reason = choice.finish_reason
        except (openai.OpenAIError, ValueError, OSError) as exc:
            error = self._error(exc, streamed=True, partial=len(out.text))
            if not out.text and not calls:
                raise _Broken(error) from None
            raise error from None
        finally:
            # Also runs on asyncio cancellation: the upstream HTTP stream is closed here.
            await stream.close()
        out.tool_calls = [
            RawToolCall(c.id or f"call_{i}", c.name, c.arguments) for i, c in sorted(calls.items())
        ]
        return out

    def _error(self, exc: Exception, streamed: bool, partial: int = 0) -> EndpointError:
        """Map an SDK/transport failure to an EndpointError that names the next step."""
        import openai

        where = f"The LLM endpoint {self.endpoint.base_url} (model {self.endpoint.model})"
        retries = self.settings.llm_max_retries
        after = f" after {partial} characters of the answer" if partial else ""
        if isinstance(exc, openai.APITimeoutError):
            return EndpointError(
                f"{where} did not answer within {self.settings.llm_timeout_s:g} s{after} "
                f"({retries} retries).",
                hint="check that the server is running and not overloaded, or raise llm_timeout_s.",
            )
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(where, exc)
        if isinstance(exc, openai.APIConnectionError):
            if streamed:
                return EndpointError(
                    f"{where} dropped the connection mid-answer{after}.",
                    hint="retry the question; if it keeps happening, check the server's log.",
                )
            return EndpointError(
                f"{where} could not be reached ({retries} retries).",
                hint="start the server or fix llm_base_url (it should end in /v1).",
            )
        if isinstance(exc, ValueError):
            return EndpointError(
                f"{where} sent a malformed streaming chunk{after} "
                f"({self.endpoint.redact(str(exc))[:200]}).",
                hint="retry; if it repeats, the server does not speak the OpenAI streaming "
                "protocol correctly (check its version).",
            )
        return EndpointError(
            f"{where} failed: {type(exc).__name__}: {self.endpoint.redact(str(exc))[:300]}.",
            hint="retry, and check the server's log.",
        )

    def _status_error(self, where: str, exc: Any) -> EndpointError:
        """Readable text for an HTTP error status (the key is redacted from server text)."""
        status = int(exc.status_code)
        detail = self.endpoint.redact(_server_message(exc))[:300]
        retries = self.settings.llm_max_retries
        if status in (401, 403):
            return EndpointError(
                f"{where} rejected the credentials (HTTP {status}): {detail}",
                hint=f"check the key in ${self.endpoint.key_env} (the variable named by "
                "llm_api_key_env).",
            )
        if status == 404:
            return EndpointError(
                f"{where} answered 404: {detail}",
                hint="check llm_model names a served model and llm_base_url ends in /v1.",
            )
        if status == 429:
            retry_after = exc.response.headers.get("retry-after")
            wait = f"; it asked to wait {retry_after} s" if retry_after else ""
            return EndpointError(
                f"{where} is rate limiting (HTTP 429) after {retries} retries{wait}.",
                hint="wait and ask again, or raise llm_max_retries.",
            )
        if status >= 500:
            return EndpointError(
                f"{where} failed with HTTP {status} after {retries} retries: {detail}",
                hint="check the server's log; retry once it is healthy.",
            )
        return EndpointError(
            f"{where} refused the request (HTTP {status}): {detail}",
            hint="check llm_model and the server's limits (a too-long prompt shows up here).",
        )


def _server_message(exc: Any) -> str:
    """The error message from an OpenAI-style error body, else the SDK's text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
    try:
        return str(json.loads(exc.response.text).get("error"))
    except Exception:
        return str(getattr(exc, "message", exc))
