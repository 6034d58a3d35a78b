"""`companion verify` of remote inputs: the recorded byte ranges fetched afresh and compared.

A remote input's manifest entry holds the URL, the ETag (the hub's LFS sha256) and size, the
exact ranges read and their sha256. The re-check HEADs the URL (an ETag or size change means
the file changed), then re-fetches every recorded range straight from the server, bypassing
the range cache, and hashes the bytes: a different sha256 under the same ETag means the
server now serves other bytes. An ETag that changes between the HEAD and the range requests
is a change too. Unreachable files are "missing", with the error that says why, and so is an
entry no audit would write (not an http(s) URL; ranges malformed, overlapping, outside the
file or more than MAX_RANGES), before any request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ValidationError

from companion.audit.remote_http import Blob, RemoteOptions, client, limiter, probe
from companion.audit.remote_reply import FileChanged, Retry, backoff, gave_up
from companion.errors import InputError
from companion.manifest import InputFile

Status = Literal["ok", "changed", "missing"]
MAX_RANGES = 1 << 20  # an audit records one range per run of tensors it read
_EDITED = "the manifest was edited or damaged; run the audit again to record a new one."


@dataclass(frozen=True)
class RangeCheck:
    """The outcome for one remote input: status, what the server says now, and why."""

    status: Status
    etag: str | None
    size: int | None
    reason: str


def _fresh(blob: Blob, begin: int, end: int, write: Callable[[bytes], object]) -> None:
    """Stream [begin, end) from the server into `write`, resuming after faults (no cache)."""
    at = begin

    def sink(chunk: bytes) -> None:
        nonlocal at
        write(chunk)
        at += len(chunk)

    retries = blob.settings.remote_retries
    for attempt in range(retries + 1):
        try:
            blob.stream(at, end, sink)
        except Retry as exc:
            if attempt == retries:
                raise gave_up(f"Re-reading {blob.url}", attempt + 1, exc) from None
            backoff(attempt, exc.after)
        if at == end:
            return
    raise InputError(f"{blob.url} kept sending short responses.", hint="retry later.")


def ranges_digest(blob: Blob, ranges: list[tuple[int, int]]) -> str:
    """sha256 of the ranges' bytes in order, fetched afresh from the server."""
    digest = hashlib.sha256()
    for a, b in ranges:
        _fresh(blob, a, b, digest.update)
    return digest.hexdigest()


def _compare(recorded: InputFile, blob: Blob) -> RangeCheck:
    """Compare the server's file now with the recorded entry (ETag, size, range bytes)."""
    if (blob.etag, blob.size) != (recorded.sha256, recorded.size):
        return RangeCheck(
            "changed",
            blob.etag,
            blob.size,
            f"the file changed on the server: ETag {recorded.sha256} ({recorded.size} bytes) "
            f"when recorded, {blob.etag} ({blob.size} bytes) now",
        )
    ranges = [(int(a), int(b)) for a, b in recorded.ranges or []]
    total = sum(b - a for a, b in ranges)
    try:
        digest = ranges_digest(blob, ranges)
    except FileChanged as exc:
        return RangeCheck("changed", blob.etag, blob.size, exc.message)
    if recorded.ranges_sha256 is not None and digest != recorded.ranges_sha256:
        return RangeCheck(
            "changed",
            blob.etag,
            blob.size,
            f"same ETag, but the {len(ranges)} recorded ranges ({total} bytes) now hash to "
            f"{digest[:16]}…, not {recorded.ranges_sha256[:16]}…",
        )
    checked = "sha256 equal" if recorded.ranges_sha256 else "no sha256 recorded to compare"
    return RangeCheck(
        "ok",
        blob.etag,
        blob.size,
        f"ETag unchanged; {len(ranges)} ranges ({total} bytes) re-fetched, {checked}",
    )


def _checked(entry: dict[str, Any]) -> InputFile:
    """The entry as an audit records it: an http(s) URL and ordered ranges inside the file."""
    try:
        recorded = InputFile.model_validate(entry)
        scheme = urlsplit(recorded.path).scheme
    except (ValidationError, ValueError):
        raise InputError(f"{entry.get('path')!r} is not a valid URL entry.", hint=_EDITED) from None
    if scheme not in ("http", "https"):
        raise InputError(f"{recorded.path} is not an http(s) URL.", hint=_EDITED)
    ranges = recorded.ranges or []
    if len(ranges) > MAX_RANGES:
        raise InputError(
            f"{recorded.path}: {len(ranges)} ranges recorded; an audit records at most "
            f"{MAX_RANGES}.",
            hint=_EDITED,
        )
    at = 0
    for r in ranges:
        if len(r) != 2:
            raise InputError(f"{recorded.path}: range {r} is not [begin, end].", hint=_EDITED)
        if not 0 <= r[0] < r[1] <= recorded.size:
            raise InputError(
                f"{recorded.path}: range {r} is empty, reversed or outside the file's "
                f"{recorded.size} bytes.",
                hint=_EDITED,
            )
        if r[0] < at:
            raise InputError(f"{recorded.path}: ranges overlap or are out of order.", hint=_EDITED)
        at = r[1]
    return recorded


def recheck(entry: dict[str, Any], settings: RemoteOptions) -> RangeCheck:
    """Re-fetch one recorded remote input's ranges (cache bypassed) and compare them."""
    try:
        recorded = _checked(entry)
    except InputError as exc:
        return RangeCheck("missing", None, None, exc.text)
    http = client(settings)
    try:
        try:
            blob = probe(recorded.path, settings, http, limiter(settings))
        except InputError as exc:
            return RangeCheck("missing", None, None, exc.text)
        try:
            return _compare(recorded, blob)
        except InputError as exc:
            return RangeCheck("missing", blob.etag, blob.size, exc.text)
    finally:
        http.close()
