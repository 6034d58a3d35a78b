"""One sequential reader for a whole audit: it hashes every input file and feeds the page cache.

Disks (and virtual disks in particular) read one sequential stream much faster than several
interleaved ones, and the manifest needs the sha256 of every file anyway. So a single thread
reads each file front to back, in large blocks, in the order the streamed pass needs the
tensors (A and B alternating); the bytes go to sha256 on two hashing threads, and the pages
stay in the page cache, where the comparison workers pick them up. Workers wait (`Gate.wait`)
until the reader has passed the range they need, so they never start competing reads. The
reader keeps at most `lead` bytes ahead of the workers, so the page cache is not flooded on
checkpoints larger than memory. Resident memory is a fixed pool of blocks.

A file whose sha256 the digest cache still vouches for (see companion/digests.py) is not
hashed: the reader only asks the kernel to read its ranges ahead (posix_fadvise WILLNEED), in
the same order, and copies nothing.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from companion.digests import Digests
from companion.errors import Cancelled, InputError
from companion.manifest import InputFile

BLOCK = 4 << 20
SLICE = 32 << 20  # bytes read from one file before switching to the other of a pair
LEAD = 1 << 30
POOL = 6


@dataclass(frozen=True)
class Span:
    """A byte range of a file that the comparison workers will need."""

    path: Path
    begin: int
    end: int


class _File:
    """One input file: descriptor, read cursor and running hash."""

    def __init__(self, path: Path, digests: Digests) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise InputError(
                f"Cannot open {path}: {exc.strerror or exc}.", hint="check the path."
            ) from None
        self.stat = os.fstat(self.fd)
        self.size = self.stat.st_size
        self.cursor = 0
        self.hash = hashlib.sha256()
        self.known = digests.known(path, self.stat)


class Gate:
    """The reader thread plus the condition workers wait on."""

    def __init__(
        self,
        files: list[Path],
        plan: list[tuple[Span, Span]],
        tick: Callable[[int], None],
        digests: Digests | None = None,
    ) -> None:
        self.digests = digests or Digests(None)
        self.started_ns = time.time_ns()
        self.files: dict[Path, _File] = {}
        try:
            for p in files:
                self.files[p] = _File(p, self.digests)
        except BaseException:
            for f in self.files.values():
                os.close(f.fd)
            raise
        self.order = files
        self.slot = {p: i % 2 for i, p in enumerate(files)}
        self.alias: dict[Path, _File | None] = {}
        self.plan = plan
        self.tick = tick
        self.cond = threading.Condition()
        self.consumed = 0
        self.planned = 0
        self.error: BaseException | None = None
        self.done = False
        self.stop = threading.Event()
        self.free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(POOL):
            self.free.put(bytearray(BLOCK))
        self.queues: list[queue.Queue[tuple[_File, bytearray, int] | None]] = [
            queue.Queue(),
            queue.Queue(),
        ]
        self.threads = [threading.Thread(target=self._hasher, args=(q,)) for q in self.queues]
        self.threads.append(threading.Thread(target=self._run, name="audit-reader"))
        for t in self.threads:
            t.daemon = True
            t.start()

    # -- workers' side -------------------------------------------------------------------
    def wait(self, path: Path, end: int) -> None:
        """Block until the reader has read `path` up to byte `end` (or has stopped)."""
        f = self.alias.get(path, self.files.get(path))
        if f is None and path not in self.alias:
            f = self.alias[path] = self.files.get(path.resolve())
        if f is None:
            return
        with self.cond:
            while f.cursor < end and not self.done and not self.stop.is_set():
                self.cond.wait(0.5)

    def consume(self, nbytes: int) -> None:
        """Report bytes the workers have finished with (lets the reader run further ahead)."""
        with self.cond:
            self.consumed += nbytes
            self.cond.notify_all()

    def result(self) -> list[InputFile]:
        """Wait for the reader and hashers; the manifest entries (raises the reader's error)."""
        for t in self.threads:
            t.join()
        if self.error is not None:
            raise self.error
        out = []
        for p in self.order:
            f = self.files[p]
            digest = f.known
            if digest is None:
                digest = f.hash.hexdigest()
                self.digests.remember(p, f.stat, digest, self.started_ns)
            source = "read" if f.known is None else "cache"
            out.append(InputFile(path=str(p), size=f.size, sha256=digest, sha256_from=source))
        return out

    def close(self) -> None:
        """Stop the reader (if still running), wait for the threads and close the files."""
        self.stop.set()
        with self.cond:
            self.cond.notify_all()
        for t in self.threads:
            t.join()
        for f in self.files.values():
            os.close(f.fd)

    # -- reader side ---------------------------------------------------------------------
    def _hasher(self, q: queue.Queue[tuple[_File, bytearray, int] | None]) -> None:
        """Hash blocks in arrival order and give the buffers back."""
        while (item := q.get()) is not None:
            f, buf, n = item
            f.hash.update(memoryview(buf)[:n])
            self.free.put(buf)

    def _read_to(self, f: _File, end: int) -> None:
        """Read (and hash) `f` sequentially up to byte `end`."""
        end = min(end, f.size)
        if f.known is not None:  # nothing to hash: only keep the kernel reading in order
            if f.cursor < end:
                os.posix_fadvise(f.fd, f.cursor, end - f.cursor, os.POSIX_FADV_WILLNEED)
                with self.cond:
                    start, f.cursor = f.cursor, end
                    self.cond.notify_all()
                self.tick(end - start)
            return
        q = self.queues[self.slot[f.path]]
        while f.cursor < end:
            if self.stop.is_set():
                raise Cancelled("Audit stopped.")
            buf = self.free.get()
            n = os.preadv(f.fd, [memoryview(buf)[: min(BLOCK, f.size - f.cursor)]], f.cursor)
            if n <= 0:
                self.free.put(buf)
                raise InputError(
                    f"{f.path} ended early (it changed while being read).",
                    hint="make sure the checkpoint is not being written, then retry.",
                )
            q.put((f, buf, n))
            with self.cond:
                f.cursor += n
                self.cond.notify_all()
            self.tick(n)

    def _throttle(self) -> None:
        """Stay at most LEAD bytes ahead of the workers."""
        with self.cond:
            while self.planned - self.consumed > LEAD and not self.stop.is_set():
                self.cond.wait(0.5)

    def _run(self) -> None:
        """Walk the plan (pairs in streaming order), then finish every file."""
        try:
            for sa, sb in self.plan:
                self._throttle()
                fa, fb = self.files[sa.path], self.files[sb.path]
                while fa.cursor < sa.end or fb.cursor < sb.end:
                    self._read_to(fa, min(sa.end, max(fa.cursor, sa.begin) + SLICE))
                    self._read_to(fb, min(sb.end, max(fb.cursor, sb.begin) + SLICE))
                self.planned += (sa.end - sa.begin) + (sb.end - sb.begin)
            for p in self.order:  # the rest of every file still to be hashed
                if self.files[p].known is None:
                    self._read_to(self.files[p], self.files[p].size)
        except BaseException as exc:
            self.error = exc
        finally:
            for q in self.queues:
                q.put(None)
            with self.cond:
                self.done = True
                self.cond.notify_all()
