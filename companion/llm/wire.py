"""HTTP plumbing under the openai SDK: a byte cap on every response, and retry waits.

The SDK's SSE decoder gathers a whole `data:` line before we see it, so an endpoint that
sends one 50 MB line would be held in memory whole. The cap sits below the SDK, on the raw
response bytes, and stops reading as soon as the total passes it.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2

# Wire bytes allowed per character of answer: SSE framing costs ~100-200 bytes a chunk and a
# chunk usually carries one token (a few characters).
BYTES_PER_CHAR = 64
MIN_RESPONSE_BYTES = 1024 * 1024
# Honour a server's Retry-After up to this; a longer wait is reported, not slept through.
MAX_RETRY_WAIT_S = 60.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0


class ResponseTooLarge(Exception):
    """The endpoint sent more bytes than the answer cap allows (raised below the SDK)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response exceeded {limit} bytes")
        self.limit = limit


def response_byte_limit(max_answer_chars: int) -> int:
    """Bytes one response may carry on the wire, derived from the answer's character cap."""
    return max(MIN_RESPONSE_BYTES, BYTES_PER_CHAR * max_answer_chars)


class _CappedStream(httpx2.AsyncByteStream):
    """A response body that raises ResponseTooLarge once `limit` bytes have passed."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner, self.limit, self.seen = inner, limit, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.seen += len(chunk)
            if self.seen > self.limit:
                raise ResponseTooLarge(self.limit)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class CappedTransport(httpx2.AsyncBaseTransport):
    """The default transport with every response body capped at `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send the request; wrap the response body in the byte cap."""
        response = await self.inner.handle_async_request(request)
        response.stream = _CappedStream(response.stream, self.limit)
        return response

    async def aclose(self) -> None:
        """Close the inner transport's connections."""
        await self.inner.aclose()


def retry_after_s(headers: Any) -> float | None:
    """The wait a response asks for (retry-after-ms, retry-after seconds or HTTP date)."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    try:
        if raw_ms is not None:
            value = float(raw_ms) / 1000
            return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_s(tries: int) -> float:
    """Exponential backoff after `tries` failed tries (0.5 s, 1 s, 2 s ... at most 8 s)."""
    return float(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, tries - 1)))
