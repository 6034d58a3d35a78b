"""Byte ranges of one remote file over HTTP Range, through an on-disk cache keyed by ETag.

Each remote file is probed once (HEAD, following redirects to the CDN) for its size and ETag
(the hub's X-Linked-Etag, the LFS sha256, when it sends one). Ranges are fetched with
`Range: bytes=a-b` into `<cache>/<key>/<a>-<b>.part`, renamed when complete, so a repeat run
reads them from disk and an interrupted one resumes from the bytes already there. Every
response is checked: 206 with the asked Content-Range, the same ETag, the right length. A
server that ignores Range is stopped after its headers (the body is never read) unless the
user allows a full download. 429 and 5xx back off, honouring Retry-After; resets and
timeouts retry from where they stopped. The HF_TOKEN is sent only to the hf endpoint's origin
(as huggingface_hub does; httpx drops it on redirects elsewhere) and never logged. The cache
is keyed by the URL's origin with the ETag and size: a server can only fill cache entries
for its own origin, never those another server's audits read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

if TYPE_CHECKING:  # httpx loads with the first client (0.2 s of start-up otherwise)
    import httpx

from companion.audit.remote_cache import complete, entries, locked, make_room, unwritable
from companion.audit.remote_reply import (
    FileChanged,
    Pace,
    Retry,
    backoff,
    etag_of,
    final,
    gave_up,
    no_range,
    refuse_encoding,
    request_error,
    retry_after,
    status_error,
)
from companion.errors import InputError
from companion.settings import Settings

_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_log = logging.getLogger(__name__)
_STEP = 1 << 20  # bytes hashed per read of the cache


@dataclass(frozen=True)
class RemoteOptions:
    """How remote checkpoints are read (from the remote_* settings; engines get no settings)."""

    hf_endpoint: str
    cache_dir: Path
    remote_concurrency: int
    remote_bandwidth: int | None
    remote_timeout_s: float
    remote_min_rate: int
    remote_retries: int
    remote_coalesce_gap: int
    remote_full_download: bool

    @classmethod
    def from_settings(cls, s: Settings | None = None) -> RemoteOptions:
        """The options the settings give (the defaults when none)."""
        s = s or Settings()
        return cls(
            hf_endpoint=s.hf_endpoint,
            cache_dir=s.remote_cache_dir or s.data_dir() / "remote-cache",
            remote_concurrency=s.remote_concurrency,
            remote_bandwidth=s.remote_bandwidth,
            remote_timeout_s=s.remote_timeout_s,
            remote_min_rate=s.remote_min_rate,
            remote_retries=s.remote_retries,
            remote_coalesce_gap=s.remote_coalesce_gap,
            remote_full_download=s.remote_full_download,
        )


def client(settings: RemoteOptions) -> httpx.Client:
    """An httpx client (HTTP/2 when the h2 package is there), redirects followed."""
    try:
        import h2  # type: ignore[import-not-found]  # noqa: F401

        http2 = True
    except ImportError:
        http2 = False
    import httpx

    timeout = httpx.Timeout(settings.remote_timeout_s)
    return httpx.Client(http2=http2, follow_redirects=True, timeout=timeout)


def origin(url: str) -> str:
    """A URL's origin, scheme://host:port with the default port filled in."""
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _headers(
    url: str, settings: RemoteOptions, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Request headers, with the HF_TOKEN bearer token for the hf endpoint's origin only."""
    out = {"Accept-Encoding": "identity", "User-Agent": "companion-audit"}
    token = os.environ.get("HF_TOKEN")
    if token and origin(url) == origin(settings.hf_endpoint):
        out["Authorization"] = f"Bearer {token}"
    return out | (extra or {})


class _Limiter:
    """A shared bandwidth cap: callers sleep so the total stays under `rate` bytes/s."""

    def __init__(self, rate: int | None) -> None:
        self.rate, self.lock, self.start, self.sent = rate, threading.Lock(), time.monotonic(), 0

    def take(self, n: int) -> float:
        """Account n bytes; sleep if ahead of the cap (the seconds slept)."""
        if self.rate is None:
            return 0.0
        with self.lock:
            self.sent += n
            wait = self.sent / self.rate - (time.monotonic() - self.start)
        if wait <= 0:
            return 0.0
        time.sleep(wait)
        return wait


@dataclass
class Blob:
    """One remote file: its URL, size, ETag, cache folder and the ranges read from it."""

    url: str
    size: int
    etag: str
    cache: Path
    settings: RemoteOptions
    http: httpx.Client
    limiter: _Limiter
    fetched: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    busy: dict[tuple[int, int], threading.Lock] = field(default_factory=dict)
    on_bytes: Callable[[int], None] | None = None  # called with each chunk's size as it arrives

    def cached(self) -> list[tuple[int, int]]:
        """Complete cached ranges [a, b) in order (regular files of the range's length)."""
        return entries(self.cache)

    def missing(self, begin: int, end: int) -> list[tuple[int, int]]:
        """Parts of [begin, end) not yet in the cache."""
        gaps, at = [], begin
        for a, b in self.cached():
            if b <= at or a >= end:
                continue
            if a > at:
                gaps.append((at, a))
            at = max(at, b)
        if at < end:
            gaps.append((at, end))
        return gaps

    def read(self, begin: int, end: int) -> bytes:
        """Bytes [begin, end), fetching what the cache lacks (recorded for the manifest)."""
        with self.lock:
            self.ranges.append((begin, end))
        for a, b in self.missing(begin, end):
            self.fetch(a, b)
        return self.from_cache(begin, end)

    def from_cache(self, begin: int, end: int) -> bytes:
        """Bytes [begin, end) from the cache (an error when part of it is not there)."""
        out = bytearray(end - begin)
        self.cache_into(begin, memoryview(out))
        return bytes(out)

    def cache_into(self, begin: int, out: memoryview) -> None:
        """Fill `out` with the bytes from `begin` on, straight from the cache files."""
        at, end = begin, begin + len(out)
        for a, b in self.cached():
            if b <= at or a > at or at >= end:
                continue
            with (self.cache / f"{a}-{b}").open("rb", buffering=0) as fh:
                fh.seek(at - a)
                got = fh.readinto(out[at - begin : min(b, end) - begin])
            at += got or 0
        if at != end:
            raise InputError(f"The range cache for {self.url} is incomplete.", hint="retry.")

    def cache_sha256(self, ranges: list[tuple[int, int]]) -> str:
        """The sha256 of these cached ranges in order, read in 1 MB steps (bounded memory)."""
        digest, buf = hashlib.sha256(), bytearray(_STEP)
        for a, b in ranges:
            for at in range(a, b, _STEP):
                view = memoryview(buf)[: min(_STEP, b - at)]
                self.cache_into(at, view)
                digest.update(view)
        return digest.hexdigest()

    def read_into(self, begin: int, out: memoryview) -> None:
        """Fill `out` with bytes from `begin` on, fetching what the cache lacks (recorded)."""
        end = begin + len(out)
        with self.lock:
            self.ranges.append((begin, end))
        for a, b in self.missing(begin, end):
            self.fetch(a, b)
        self.cache_into(begin, out)

    def fetch(self, begin: int, end: int) -> None:
        """Fetch [begin, end) into the cache (one writer per range at a time)."""
        with self.lock:
            gate = self.busy.setdefault((begin, end), threading.Lock())
        with gate:
            try:
                self._fetch(begin, end)
            except OSError as exc:  # the disk is full or read-only, the cache unwritable, ...
                raise unwritable(self.cache, exc) from None

    def _fetch(self, begin: int, end: int) -> None:
        """Fetch [begin, end), resuming a partial file, retrying faults."""
        part = self.cache / f"{begin}-{end}.part"
        self.cache.mkdir(parents=True, exist_ok=True)
        for attempt in range(self.settings.remote_retries + 1):
            if not self.missing(begin, end):
                return
            try:
                with locked(part) as fh:  # another process fetching this range holds it
                    self._resume(begin, end, part, fh)
                if not self.missing(begin, end):
                    return
            except Retry as exc:
                if attempt == self.settings.remote_retries:
                    raise gave_up(f"Reading {self.url}", attempt + 1, exc) from None
                backoff(attempt, exc.after)
        raise InputError(f"{self.url} kept sending short responses.", hint="retry later.")

    def _resume(self, begin: int, end: int, part: Path, fh: BinaryIO) -> None:
        """Append what the locked `part` lacks of [begin, end); complete it once whole."""
        if not self.missing(begin, end):
            return  # another writer completed it while this one waited for the lock
        have = os.fstat(fh.fileno()).st_size
        if have > end - begin:  # appended to by writers before the lock: start afresh
            fh.truncate(0)
            have = 0
        if have < end - begin:
            self.stream(begin + have, end, fh.write, whole=self.settings.remote_full_download)
        fh.flush()
        if os.fstat(fh.fileno()).st_size == end - begin:
            complete(part, self.cache / f"{begin}-{end}")

    def stream(
        self, begin: int, end: int, write: Callable[[bytes], object], whole: bool = False
    ) -> None:
        """One checked Range GET of [begin, end), its body handed to `write` (no cache)."""
        import httpx  # loaded with the client

        headers = _headers(self.url, self.settings, {"Range": f"bytes={begin}-{end - 1}"})
        try:
            with self.http.stream("GET", self.url, headers=headers) as resp:
                refuse_encoding(self.url, resp)
                if resp.status_code == 200 and whole:
                    self._whole(resp)
                    return
                self._check(resp, begin, end)
                self._save(resp, write, end - begin)
        except final() as exc:
            raise request_error(self.url, exc) from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise Retry(f"{type(exc).__name__} part way through a range") from None

    def _save(self, resp: httpx.Response, write: Callable[[bytes], object], limit: int) -> None:
        """Hand the raw body to `write`, refusing more than `limit` bytes or a crawl."""
        pace = Pace(self.settings.remote_min_rate, self.settings.remote_timeout_s)
        for chunk in resp.iter_raw():  # each network read as it comes (<= 64 KB), unbuffered
            if len(chunk) > limit:
                raise InputError(f"{self.url} sent more bytes than asked.", hint="retry.")
            write(chunk)
            limit -= len(chunk)
            pace.took(len(chunk), self.limiter.take(len(chunk)))
            with self.lock:
                self.fetched += len(chunk)
            if self.on_bytes is not None:
                self.on_bytes(len(chunk))

    def _whole(self, resp: httpx.Response) -> None:
        """The user allowed it: the whole file into the cache as one range (if it fits)."""
        make_room(self.settings.cache_dir, self.size, f"{self.url} ignores Range: its whole file")
        _log.warning("%s ignores Range: downloading all %d bytes", self.url, self.size)
        part = self.cache / f"0-{self.size}.whole"
        part.unlink(missing_ok=True)
        with part.open("ab") as fh:
            self._save(resp, fh.write, self.size)
        if part.stat().st_size != self.size:
            raise Retry("the full download ended early")
        complete(part, self.cache / f"0-{self.size}")

    def _check(self, resp: httpx.Response, begin: int, end: int) -> None:
        """Refuse anything but the asked range of the same file."""
        if resp.status_code in (429, 500, 502, 503, 504):
            raise Retry(f"HTTP {resp.status_code}", retry_after(resp))
        if resp.status_code == 200:
            raise no_range(self.url, resp)
        if resp.status_code != 206:
            raise status_error(self.url, resp.status_code)
        tag = etag_of(resp)
        if tag and tag != self.etag:
            raise FileChanged(
                f"{self.url} changed while it was being read (ETag {self.etag} became {tag}).",
                hint="pin a revision (hf://ORG/NAME@COMMIT) and run the audit again.",
            )
        m = _RANGE.fullmatch(resp.headers.get("content-range", ""))
        if m is None or (int(m.group(1)), int(m.group(2)) + 1) != (begin, end):
            raise InputError(
                f"{self.url} answered bytes {begin}-{end - 1} with "
                f"{resp.headers.get('content-range')!r}.",
                hint="the server mishandles Range requests; try another mirror.",
            )
        if m.group(3) != "*" and int(m.group(3)) != self.size:
            raise FileChanged(
                f"{self.url} now reports {m.group(3)} bytes, not the {self.size} its HEAD said.",
                hint="pin a revision (hf://ORG/NAME@COMMIT) and run the audit again.",
            )
        length = resp.headers.get("content-length")
        if length is not None and int(length) != end - begin:
            raise Retry(f"a {length}-byte body for a {end - begin}-byte range")


def probe(url: str, settings: RemoteOptions, http: httpx.Client, limiter: _Limiter) -> Blob:
    """HEAD a remote file (following redirects): size and ETag, and its cache folder."""
    import httpx  # loaded with the client

    for attempt in range(settings.remote_retries + 1):
        try:
            resp = http.head(url, headers=_headers(url, settings))
        except final() as exc:
            raise request_error(url, exc) from None
        except httpx.TransportError as exc:
            if attempt == settings.remote_retries:
                raise InputError(
                    f"Cannot reach {url}: {type(exc).__name__}.", hint="check the URL and network."
                ) from None
            backoff(attempt)
            continue
        if resp.status_code in (429, 500, 502, 503, 504) and attempt < settings.remote_retries:
            backoff(attempt, retry_after(resp) or None)
            continue
        if resp.status_code != 200:
            raise status_error(url, resp.status_code)
        size = resp.headers.get("content-length")
        if size is None or not size.isdigit():
            raise InputError(f"{url} does not report its size.", hint="try another mirror.")
        tag = etag_of(resp)
        if not tag:
            raise InputError(
                f"{url} sends no ETag, so cached ranges could not be trusted.",
                hint="use the hub's resolve URL or a mirror that sends ETags.",
            )
        root = settings.cache_dir
        key = hashlib.sha256(f"{origin(url)}\0{tag}\0{size}".encode()).hexdigest()[:32]
        return Blob(url, int(size), tag, root / key, settings, http, limiter)
    raise InputError(f"{url} kept failing.", hint="retry later.")


def limiter(settings: RemoteOptions) -> _Limiter:
    """The bandwidth cap shared by every file of one audit."""
    return _Limiter(settings.remote_bandwidth)
