"""What went wrong with one request to the endpoint, whether a retry can help, and how to
say it: every message counts the tries really made and names the next step."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from companion.errors import EndpointError
from companion.llm.endpoint import Endpoint
from companion.llm.wire import MAX_RETRY_WAIT_S, response_byte_limit, retry_after_s

RETRY_STATUSES = frozenset({408, 409, 429})
# llama.cpp: "Requested tokens (4896) exceed context window of 4096"; OpenAI and vLLM: "This
# model's maximum context length is 4096 tokens. However, you requested 4896 tokens ...".
_WINDOW = re.compile(r"context (?:window|length) (?:of|is) (\d+)", re.IGNORECASE)
_REQUESTED = re.compile(
    r"(?:requested tokens \((\d+)\)|resulted in (\d+) tokens|requested (\d+) tokens)",
    re.IGNORECASE,
)


class ContextExceeded(EndpointError):
    """The endpoint refused the prompt as longer than its context window."""

    def __init__(self, message: str, hint: str, window: int | None, requested: int | None):
        super().__init__(message, hint=hint)
        self.window, self.requested = window, requested


@dataclass
class Failure(Exception):
    """One failed try. `kind` says what happened; `partial` is how many characters the user saw."""

    kind: str
    cause: Exception | None = None
    partial: int = 0

    @property
    def wait_s(self) -> float | None:
        """The wait the endpoint asked for, when it sent one."""
        response = getattr(self.cause, "response", None)
        return retry_after_s(getattr(response, "headers", None))

    @property
    def status(self) -> int | None:
        """The HTTP status of a refused request."""
        code = getattr(self.cause, "status_code", None)
        return int(code) if isinstance(code, int) else None

    def retryable(self) -> bool:
        """Whether another try could succeed (never once text reached the user)."""
        if self.partial or is_context_error(self.cause):
            return False
        if self.kind == "status":
            status = self.status or 0
            return status in RETRY_STATUSES or status >= 500
        return self.kind in ("timeout", "connect", "dropped", "malformed", "ended", "stream_error")

    def waits_too_long(self) -> bool:
        """The endpoint asked for a wait longer than we are willing to sleep."""
        wait = self.wait_s
        return wait is not None and wait > MAX_RETRY_WAIT_S


def tries_text(tries: int) -> str:
    """'1 try' / '3 tries'."""
    return f"{tries} {'try' if tries == 1 else 'tries'}"


def error_body(exc: Any) -> dict[str, Any]:
    """The OpenAI-style error object of a failure ({} when there is none)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        return inner if isinstance(inner, dict) else {"message": str(inner)}
    try:
        data = json.loads(exc.response.text)
    except Exception:
        return {}
    inner = data.get("error", data) if isinstance(data, dict) else None
    return inner if isinstance(inner, dict) else {}


def server_message(exc: Any) -> str:
    """The error message from an OpenAI-style error body, else the SDK's text."""
    message = error_body(exc).get("message")
    return message if isinstance(message, str) else str(getattr(exc, "message", exc))


def is_context_error(exc: Any) -> bool:
    """A refusal because the prompt plus max_tokens is longer than the context window."""
    if exc is None:
        return False
    body = error_body(exc)
    if body.get("code") == "context_length_exceeded":
        return True
    status = getattr(exc, "status_code", None)
    return status in (400, 413, None) and bool(_WINDOW.search(server_message(exc)))


def _first_int(match: re.Match[str] | None) -> int | None:
    """The first group of a match that holds a number."""
    if match is None:
        return None
    return next((int(g) for g in match.groups() if g), None)


def context_error(where: str, endpoint: Endpoint, exc: Any) -> ContextExceeded:
    """The context-length refusal, with the window and the tokens requested when stated."""
    detail = endpoint.redact(server_message(exc))[:300]
    window = _first_int(_WINDOW.search(detail))
    requested = _first_int(_REQUESTED.search(detail))
    size = f" of {window} tokens" if window else ""
    return ContextExceeded(
        f"{where} refused the prompt as longer than its context window{size}: {detail}",
        hint=f"set llm_context_length to {window or 'the served context length'} (this server "
        "does not report it), ask about a smaller selection, or start the server with a longer "
        "context.",
        window=window,
        requested=requested,
    )


def describe(failure: Failure, endpoint: Endpoint, settings: Any, tries: int) -> EndpointError:
    """The user-facing error of the last failed try, after `tries` tries in all."""
    where = f"The LLM endpoint {endpoint.base_url} (model {endpoint.model})"
    after = f" after {failure.partial} characters of the answer" if failure.partial else ""
    exc, n = failure.cause, tries_text(tries)
    if is_context_error(exc):
        return context_error(where, endpoint, exc)
    if failure.kind == "status":
        return _status_error(where, endpoint, failure, n)
    if failure.kind == "timeout":
        return EndpointError(
            f"{where} did not answer within {settings.llm_timeout_s:g} s{after} ({n}).",
            hint="check that the server is running and not overloaded, or raise llm_timeout_s.",
        )
    if failure.kind == "connect":
        return EndpointError(
            f"{where} could not be reached ({n}).",
            hint="start the server or fix llm_base_url (it should end in /v1).",
        )
    if failure.kind == "dropped":
        return EndpointError(
            f"{where} dropped the connection mid-answer{after} ({n}).",
            hint="retry the question; if it keeps happening, check the server's log.",
        )
    if failure.kind == "malformed":
        return EndpointError(
            f"{where} sent a malformed streaming chunk{after} "
            f"({endpoint.redact(str(exc))[:200]}; {n}).",
            hint="retry; if it repeats, the server does not speak the OpenAI streaming "
            "protocol correctly (check its version).",
        )
    return _stream_error(where, endpoint, failure, settings, n, after)


def _stream_error(
    where: str, endpoint: Endpoint, failure: Failure, settings: Any, n: str, after: str
) -> EndpointError:
    """Failures of a stream that began with 200: error events, early ends, caps."""
    if failure.kind == "stream_error":
        detail = endpoint.redact(server_message(failure.cause))[:300]
        return EndpointError(
            f"{where} reported an error in the middle of its answer{after}: {detail} ({n}).",
            hint="check the server's log; the answer is incomplete, so ask again.",
        )
    if failure.kind == "ended":
        return EndpointError(
            f"{where} ended its answer stream without finishing it{after} ({n}): no "
            "finish_reason arrived, so the server most likely failed while answering.",
            hint="check the server's log (a too-long prompt or an out-of-memory shows up there), "
            "then ask again.",
        )
    if failure.kind == "too_large":
        limit = response_byte_limit(settings.llm_max_answer_chars)
        return EndpointError(
            f"{where} sent more than {limit} bytes without any answer text; reading stopped.",
            hint="check the server; raise llm_max_answer_chars if such long answers are expected.",
        )
    if failure.kind == "too_slow":
        return EndpointError(
            f"{where} sent no answer text within llm_max_answer_s={settings.llm_max_answer_s:g} "
            "s; reading stopped.",
            hint="check that the server is not overloaded, or raise llm_max_answer_s.",
        )
    exc = failure.cause
    return EndpointError(
        f"{where} failed: {type(exc).__name__}: {endpoint.redact(str(exc))[:300]} ({n}).",
        hint="retry, and check the server's log.",
    )


def _status_error(where: str, endpoint: Endpoint, failure: Failure, n: str) -> EndpointError:
    """Readable text for an HTTP error status (the key is redacted from server text)."""
    status = failure.status or 0
    detail = endpoint.redact(server_message(failure.cause))[:300]
    if status in (401, 403):
        return EndpointError(
            f"{where} rejected the credentials (HTTP {status}): {detail}",
            hint=f"check the key in ${endpoint.key_env} (the variable named by llm_api_key_env).",
        )
    if status == 404:
        return EndpointError(
            f"{where} answered 404: {detail}",
            hint="check llm_model names a served model and llm_base_url ends in /v1.",
        )
    wait = failure.wait_s
    if failure.waits_too_long():
        return EndpointError(
            f"{where} answered HTTP {status}; the endpoint asked to wait {wait:g} s; "
            f"not retrying ({n}).",
            hint=f"ask again in {wait:g} s, or use another endpoint.",
        )
    if status == 429:
        asked = f"; it asked to wait {wait:g} s" if wait is not None else ""
        return EndpointError(
            f"{where} is rate limiting (HTTP 429), gave up after {n}{asked}.",
            hint="wait and ask again, or raise llm_max_retries.",
        )
    if status >= 500:
        return EndpointError(
            f"{where} failed with HTTP {status} after {n}: {detail}",
            hint="check the server's log; retry once it is healthy.",
        )
    return EndpointError(
        f"{where} refused the request (HTTP {status}): {detail}",
        hint="check llm_model and the server's limits.",
    )
