"""One HTTP answer from a remote file's server: the error its status or an httpx failure
means, whether a fault is worth retrying (and after how long), whether its body comes fast
enough, and the file's ETag."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # httpx loads with the first client
    import httpx

from companion.errors import InputError


class FileChanged(InputError):
    """The remote file's ETag changed while it was being read."""


class Retry(Exception):
    """A fault worth retrying (optionally after Retry-After seconds)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class TooSlow(Retry):
    """A body arriving below the remote_min_rate floor (retried: a new connection may be faster)."""

    def __init__(self, rate: float, floor: int) -> None:
        super().__init__(f"{rate:.0f} bytes/s, below remote_min_rate ({floor} bytes/s)")
        self.rate, self.floor = rate, floor


class Pace:
    """One answer's body rate, over the time spent waiting for the server only.

    httpx's timeout bounds each gap between reads, so a server sending a byte just inside
    every gap keeps a request alive for ever; this floor bounds the whole body instead. The
    time our own bandwidth cap sleeps is not the server's and is left out of the clock.
    """

    def __init__(self, floor: int, grace: float) -> None:
        self.floor, self.grace = floor, grace
        self.start, self.ours, self.got = time.monotonic(), 0.0, 0

    def took(self, n: int, slept: float) -> None:
        """Count n more bytes (and `slept` seconds of ours); TooSlow once under the floor."""
        self.got += n
        self.ours += slept
        waited = time.monotonic() - self.start - self.ours
        if self.floor and waited > self.grace and self.got < self.floor * waited:
            raise TooSlow(self.got / waited, self.floor)


def backoff(attempt: int, after: float | None = None) -> None:
    """Sleep before retry number `attempt + 1`: the server's Retry-After, else 0.2 s doubling
    per attempt; at most 30 s."""
    time.sleep(min(after if after is not None else 0.2 * 2**attempt, 30.0))


def gave_up(what: str, tries: int, exc: Retry) -> InputError:
    """The error once a range's retries are spent; a too-slow server names the floor."""
    if isinstance(exc, TooSlow):
        return InputError(
            f"{what} failed after {tries} tries: the server is too slow "
            f"({exc.rate:.0f} bytes/s; remote_min_rate is {exc.floor} bytes/s).",
            hint="try another mirror, or lower remote_min_rate (0 turns the floor off).",
        )
    return InputError(
        f"{what} failed after {tries} tries: {exc}.",
        hint="check the connection, or raise remote_retries / remote_timeout_s.",
    )


def status_error(url: str, status: int) -> InputError:
    """A clear error for an HTTP failure status, naming the next step."""
    if status == 401:
        return InputError(
            f"{url} needs authentication (HTTP 401).",
            hint="set HF_TOKEN to a token with read access (huggingface.co/settings/tokens); "
            "it is sent only to the hf endpoint, so for another server set HF_ENDPOINT to it.",
        )
    if status == 403:
        return InputError(
            f"{url} is forbidden (HTTP 403).",
            hint="accept the model's license on its hub page, or use a token that may read it.",
        )
    if status == 404:
        return InputError(
            f"{url} was not found (HTTP 404).",
            hint="check the repository name, the revision and the file name.",
        )
    return InputError(f"{url} failed with HTTP {status}.", hint="retry later.")


def final() -> tuple[type[Exception], ...]:
    """The httpx failures that retrying cannot mend (a redirect loop, a malformed URL)."""
    import httpx  # loaded with the client

    return httpx.TooManyRedirects, httpx.InvalidURL, httpx.UnsupportedProtocol


def request_error(url: str, exc: Exception) -> InputError:
    """The error for one of the `final` httpx failures."""
    import httpx  # loaded with the client

    if isinstance(exc, httpx.TooManyRedirects):
        return InputError(
            f"{url} redirects in a loop (more than 20 redirects); stopped.",
            hint="check the URL; the server (or a proxy in front of it) is misconfigured.",
        )
    why = str(exc).rstrip(".")
    return InputError(
        f"{url} is not a valid URL, or redirects to one that is not http(s): {why}.",
        hint="check the URL: https://HOST/PATH or hf://ORG/NAME[@REVISION][/FILE].",
    )


def refuse_encoding(url: str, resp: httpx.Response) -> None:
    """Refuse a body sent encoded (gzip, ...): identity was asked, and decoding is unbounded."""
    coding = resp.headers.get("content-encoding", "").strip().lower()
    if coding not in ("", "identity"):
        raise InputError(
            f"{url} answered with Content-Encoding: {coding}, though identity was asked; "
            "its body was not read.",
            hint="use a server or mirror that sends the file's bytes unencoded.",
        )


def retry_after(resp: httpx.Response) -> float | None:
    """Retry-After in seconds (the numeric form, ASCII digits only), else None."""
    value = resp.headers.get("retry-after", "").strip()
    return float(value) if value.isascii() and value.isdigit() else None


def etag_of(resp: httpx.Response) -> str:
    """The file's identity: the hub's linked ETag (LFS sha256) if any response had one."""
    for r in [*resp.history, resp]:
        tag = r.headers.get("x-linked-etag")
        if tag:
            return str(tag).strip('W/"')
    return str(resp.headers.get("etag", "")).strip('W/"')


def no_range(url: str, resp: httpx.Response) -> InputError:
    """The error for a 200 answer to a Range request (the body is not read)."""
    claims = resp.headers.get("accept-ranges", "none").lower() == "bytes"
    what = "ignored the Range header" if claims else "does not support Range requests"
    return InputError(
        f"{url} {what} and started sending the whole file "
        f"({resp.headers.get('content-length', '?')} bytes); stopped.",
        hint="use a server or mirror that supports Range, or set remote_full_download "
        "to download it whole.",
    )
