"""Streaming byte access to log files: encodings, BOMs, LFS pointers and binary checks.

Text logs are read in chunks that end on a line boundary, so memory stays flat whatever the
file size. UTF-16 files (PowerShell redirects) are transcoded to UTF-8 chunk by chunk; every
other encoding is read as bytes, since the numbers the parsers need are ASCII.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from companion import files
from companion.errors import InputError

CHUNK = 1 << 22
LFS_MAGIC = b"version https://git-lfs.github.com/spec/v1"
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n\r\x1b\x0c\x08" + bytes(range(0x80, 0x100))


# sha256 of files hashed while being parsed, keyed by (path, size, mtime): the manifest
# reuses them instead of reading a multi-GB log a second time.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _key(path: Path) -> tuple[str, int, int] | None:
    """Cache key for a file's current content."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def known_digest(path: Path) -> str | None:
    """The sha256 computed while this exact file content was parsed, if any."""
    key = _key(path)
    return _DIGESTS.get(key) if key is not None else None


@dataclass
class Chunk:
    """A run of whole lines and the number of newlines before it."""

    data: bytes
    line_base: int
    nlines: int = 0


def read_head(path: Path, size: int = 65536) -> bytes:
    """The first bytes of a file, as an InputError if unreadable."""
    if path.is_dir():
        raise InputError(
            f"{path} is a directory.", hint="pass a log file or a W&B/TensorBoard run folder."
        )
    try:
        return files.current().head(path, size, "Log")
    except OSError as exc:
        raise files.os_error(path, "Log", exc) from None


def is_lfs_pointer(head: bytes) -> bool:
    """Whether these bytes are a Git LFS pointer rather than content."""
    return head.lstrip(b"\xef\xbb\xbf").startswith(LFS_MAGIC)


def lfs_error(path: Path, head: bytes) -> InputError:
    """The clear error for a Git LFS pointer in place of a log."""
    size = next(
        (
            ln.split()[1].decode("ascii", "replace")
            for ln in head.splitlines()
            if ln.startswith(b"size ") and len(ln.split()) > 1
        ),
        "?",
    )
    return InputError(
        f"{path} is a Git LFS pointer (to a {size}-byte object), not the log itself.",
        hint="run `git lfs pull` (or `git lfs fetch && git lfs checkout`) and try again.",
    )


def utf16_codec(head: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when the head is UTF-16 (with or without BOM), else None."""
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le"
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be"
    sample = head[:4096]
    if len(sample) >= 16:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be"
    return None


def looks_binary(head: bytes) -> bool:
    """Whether a head (already known not to be UTF-16) is binary rather than text."""
    if not head:
        return False
    sample = head[:8192]
    junk = len(sample.translate(None, _TEXT_BYTES))
    return (b"\x00" in sample[:1024] and junk > 8) or junk > 0.1 * len(sample)


def open_text_chunks(path: Path, chunk_size: int = CHUNK) -> Iterator[Chunk]:
    """Yield chunks of whole lines (UTF-8 or raw bytes), checking LFS, emptiness and binary."""
    head = read_head(path)
    if not head:
        raise InputError(f"{path} is empty.", hint="point at the complete training log.")
    if is_lfs_pointer(head):
        raise lfs_error(path, head)
    codec = utf16_codec(head)
    if codec is None and looks_binary(head):
        raise InputError(
            f"{path} is binary, not a text training log.",
            hint="pass a text log, a W&B CSV export, trainer_state.json, a TensorBoard "
            "events file or a W&B run folder (see docs/formats.md).",
        )
    return _chunks(path, codec, chunk_size)


@contextmanager
def _shutdown(pool: ThreadPoolExecutor) -> Iterator[None]:
    """Stop the hashing thread however the reading ends."""
    try:
        yield
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunks(path: Path, codec: str | None, chunk_size: int) -> Iterator[Chunk]:
    """The generator behind `open_text_chunks`."""
    decoder = codecs.getincrementaldecoder(codec)("replace") if codec else None
    carry = b""
    lines = 0
    first = True
    key = _key(path)
    digest = hashlib.sha256()
    fh = files.open_regular(path, "Log")  # regular files only: a FIFO never blocks the scan
    # sha256 releases the GIL: hash chunk k on a helper thread while chunk k is parsed.
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidence-sha256")
    pending: Future[None] | None = None
    with fh, _shutdown(hasher):
        while True:
            try:
                raw = fh.read(chunk_size)
            except OSError as exc:
                raise InputError(
                    f"Reading {path} failed: {exc.strerror or exc}.", hint="check the disk."
                ) from None
            final = not raw
            if pending is not None:
                pending.result()
            pending = hasher.submit(digest.update, raw)
            if final and key is not None:
                pending.result()
                if len(_DIGESTS) > 256:
                    _DIGESTS.clear()
                _DIGESTS[key] = digest.hexdigest()
            if decoder is not None:
                data = decoder.decode(raw, final=final).encode("utf-8", "replace")
            else:
                data = raw
            if first:
                data = data.removeprefix(b"\xef\xbb\xbf")
                first = False
            data = carry + data
            if final:
                if data:
                    yield Chunk(data, lines, data.count(b"\n"))
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                if len(carry) > 64 * chunk_size:
                    # one enormous "line" (no newlines at all): hand it over rather than grow
                    yield Chunk(carry, lines, 0)
                    carry = b""
                continue
            carry = data[cut:]
            body = data[:cut]
            n = body.count(b"\n")
            yield Chunk(body, lines, n)
            lines += n
