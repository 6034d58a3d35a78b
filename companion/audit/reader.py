"""One sequential reader for a whole audit: it hashes every input file and feeds the workers.

Disks (and virtual disks in particular) read one sequential stream much faster than several
interleaved ones, and the manifest needs the sha256 of every file anyway. So a single thread
reads each file front to back, in aligned blocks, in the order the streamed pass needs the
tensors (A and B in step); the blocks go to sha256 on two hashing threads and stay in a fixed
pool, from which the comparison workers read their chunks in place (`Gate.hold`, pinned
while the kernel reduces them; `Gate.copy` for a chunk straddling two blocks). Workers wait
(`Gate.wait`) until the reader has passed the range they need, so they never start competing
reads; a range no longer in the pool (tensors stored in a very different order, or read twice
for a third model) is read again with pread. The reader keeps at most `LEAD` planned bytes
ahead of the workers. Resident memory is the pool, whatever the checkpoint size.

DEPTH reads are always in flight: the queue of reads runs on across steps, tensors and
files and never drains at a boundary. How each block is read (O_DIRECT or buffered) is
decided per block in blockio.py. A file whose sha256 the digest cache still vouches for
(companion/digests.py) is not hashed; when nine tenths of it are in the page cache it is not
read here either: the reader only asks the kernel to read its ranges ahead (posix_fadvise
WILLNEED), in the same order, and the workers pread them (faster than the pool when warm); a
cold one is read into the pool like the others, at direct-read speed.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from companion.audit.blockio import Block, ReadFile
from companion.digests import Digests
from companion.errors import Cancelled, InputError
from companion.manifest import InputFile

BLOCK = 8 << 20
SLICE = 16 << 20  # bytes of the longer span read per step before the other catches up
LEAD = 32 << 20
# blocks: LEAD + one step (SLICE) of each file + DEPTH + the hashers' backlog. Kept small:
# every pool page is touched fresh once per audit, and first touches are slow on VMs (~1 ms
# per MB here, as much as hashing it).
POOL = 14
DEPTH = 4  # reads in flight: virtual disks serve more bytes in flight faster (8 MB x 2: 63 %
# of dd's single-stream O_DIRECT rate here, 8 MB x 4: 94 %, 16 MB x 4: 150 %)


@dataclass(frozen=True)
class Span:
    """A byte range of a file that the comparison workers will need."""

    path: Path
    begin: int
    end: int


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
        self.files: dict[Path, ReadFile] = {}
        try:
            for p in files:
                self.files[p] = ReadFile(p, self.digests)
        except BaseException:
            for f in self.files.values():
                f.close()
            raise
        self.order = files
        self.huge = any(f.cold for f in self.files.values())  # direct reads ahead
        self.slot = {p: i % 2 for i, p in enumerate(files)}
        self.alias: dict[Path, ReadFile | None] = {}
        self.plan = plan
        self.tick = tick
        self.cond = threading.Condition()
        self.consumed = 0
        self.error: BaseException | None = None
        self.done = False
        self.stop = threading.Event()
        self.pool: deque[Block] = deque()  # oldest first; reused from the front
        self.queues: list[queue.Queue[Block | None]] = [queue.Queue(), queue.Queue()]
        self.io = ThreadPoolExecutor(DEPTH, thread_name_prefix="audit-io")
        self.threads = [threading.Thread(target=self._hasher, args=(q,)) for q in self.queues]
        self.threads.append(threading.Thread(target=self._run, name="audit-reader"))
        for t in self.threads:
            t.daemon = True
            t.start()

    # -- workers' side -------------------------------------------------------------------
    def _file(self, path: Path) -> ReadFile | None:
        """The input file behind `path` (as given, or resolved)."""
        f = self.alias.get(path, self.files.get(path))
        if f is None and path not in self.alias:
            f = self.alias[path] = self.files.get(path.resolve())
        return f

    def wait(self, path: Path, end: int) -> None:
        """Block until the reader has read `path` up to byte `end` (or has stopped)."""
        f = self._file(path)
        if f is None:
            return
        if end > f.size:  # the reader stops at the end: waiting would never return
            raise InputError(
                f"{path}: a tensor runs past the end of the file ({end:,} > {f.size:,} bytes).",
                hint="the file is truncated or corrupt; fetch it again.",
            )
        with self.cond:
            while f.cursor < end and not self.done and not self.stop.is_set():
                self.cond.wait(0.5)

    def copy(self, path: Path, offset: int, out: memoryview) -> bool:
        """Copy bytes [offset, offset + len(out)) from the pool; False if not all there."""
        f = self._file(path)
        if f is None or not len(out):
            return False
        first, last = offset // BLOCK, (offset + len(out) - 1) // BLOCK
        with self.cond:
            blocks = [f.blocks.get(i) for i in range(first, last + 1)]
            if any(b is None or b.owner is not f for b in blocks):
                return False
            for b in blocks:
                assert b is not None
                b.pins += 1
        try:
            pos = 0
            for b in blocks:
                assert b is not None
                start = offset + pos - b.offset
                n = min(len(out) - pos, b.n - start)
                out[pos : pos + n] = b.view[start : start + n]
                pos += n
            return pos == len(out)
        finally:
            with self.cond:
                for b in blocks:
                    assert b is not None
                    b.pins -= 1
                self.cond.notify_all()

    def hold(self, path: Path, offset: int, nbytes: int) -> tuple[memoryview, Block] | None:
        """Pin the pool block holding [offset, offset + nbytes) whole and return a read-only
        view of those bytes (no copy); None when they are not in one block. `release` it."""
        f = self._file(path)
        if f is None or nbytes <= 0 or offset // BLOCK != (offset + nbytes - 1) // BLOCK:
            return None
        with self.cond:
            b = f.blocks.get(offset // BLOCK)
            if b is None or b.owner is not f or offset + nbytes > b.offset + b.n:
                return None
            b.pins += 1
        start = offset - b.offset
        return b.view[start : start + nbytes].toreadonly(), b

    def release(self, block: Block) -> None:
        """Let go of a block pinned by `hold`."""
        with self.cond:
            block.pins -= 1
            self.cond.notify_all()

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
        """Stop the reader (if still running), wait for the threads, free the pool."""
        self.stop.set()
        with self.cond:
            self.cond.notify_all()
        for t in self.threads:
            t.join()
        self.io.shutdown()
        for f in self.files.values():
            f.close()
        self.pool.clear()  # the buffers go when the last worker lets go of them

    # -- reader side ---------------------------------------------------------------------
    def _hasher(self, q: queue.Queue[Block | None]) -> None:
        """Hash blocks in arrival order."""
        while (b := q.get()) is not None:
            assert b.owner is not None
            b.owner.hash.update(b.view[: b.n])
            with self.cond:
                b.hashed = True
                self.cond.notify_all()

    def _buffer(self) -> Block:
        """A free pool block: a new one while the pool grows, else the oldest once hashed."""
        if len(self.pool) < POOL:
            b = Block(self.huge, BLOCK)
        else:
            b = self.pool.popleft()
            with self.cond:
                while not b.hashed or b.pins:
                    if self.stop.is_set():
                        self.pool.appendleft(b)
                        raise Cancelled("Audit stopped.")
                    self.cond.wait(0.5)
                if b.owner is not None and b.owner.blocks.get(b.offset // BLOCK) is b:
                    del b.owner.blocks[b.offset // BLOCK]
        self.pool.append(b)
        return b

    def _advise(self, f: ReadFile, end: int) -> None:
        """A file the digest cache vouches for: only keep the kernel reading it in order."""
        if f.cursor < end:
            os.posix_fadvise(f.fd, f.cursor, end - f.cursor, os.POSIX_FADV_WILLNEED)
            with self.cond:
                start, f.cursor = f.cursor, end
                f.issued = end
                self.cond.notify_all()
            self.tick(end - start)

    def _steps(self) -> Iterator[tuple[int, list[tuple[ReadFile, int]]]]:
        """The read targets step by step: (planned bytes before the step, [(file, end)]).

        Both spans of a pair advance in step (SLICE of the longer one at a time); after the
        plan, every file still to be hashed is read to its end."""
        base = 0
        for sa, sb in self.plan:
            fa, fb = self.files[sa.path], self.files[sb.path]
            la, lb = sa.end - sa.begin, sb.end - sb.begin
            steps = max(1, -(-max(la, lb) // SLICE))
            for k in range(1, steps + 1):
                before = base + (la + lb) * (k - 1) // steps
                yield before, [(fa, sa.begin + la * k // steps), (fb, sb.begin + lb * k // steps)]
            base += la + lb
        tail = [(f, f.size) for f in (self.files[p] for p in self.order) if f.known is None]
        yield -(1 << 62), tail  # never throttled

    def _complete(self, pending: deque[tuple[Block, ReadFile, int, Future[int]]]) -> None:
        """Finish the oldest read in flight: publish its block and queue it for hashing (a
        file the digest cache vouches for is read for the workers only)."""
        b, f, at, read = pending.popleft()
        n = read.result()
        if n != min(BLOCK, f.size - at):
            raise InputError(
                f"{f.path} ended early (it changed while being read).",
                hint="make sure the checkpoint is not being written, then retry.",
            )
        with self.cond:
            b.owner, b.offset, b.n, b.hashed = f, at, n, f.known is not None
            f.blocks[at // BLOCK] = b
            f.cursor += n
            self.cond.notify_all()
        if f.known is None:
            self.queues[self.slot[f.path]].put(b)
        self.tick(n)

    def _throttle(
        self, before: int, pending: deque[tuple[Block, ReadFile, int, Future[int]]]
    ) -> None:
        """Stay at most LEAD planned bytes ahead of the workers, finishing reads meanwhile."""
        while True:
            with self.cond:
                if before - self.consumed <= LEAD or self.stop.is_set():
                    return
                if not pending:
                    self.cond.wait(0.5)
                    continue
            self._complete(pending)

    def _run(self) -> None:
        """Walk the steps with DEPTH reads always in flight (across steps, tensors and files),
        then finish every file to hash."""
        pending: deque[tuple[Block, ReadFile, int, Future[int]]] = deque()
        try:
            for before, targets in self._steps():
                self._throttle(before, pending)
                for f, end in targets:
                    end = min(end, f.size)
                    if f.advised:
                        self._advise(f, end)
                        continue
                    while f.issued < end:
                        if len(pending) >= min(DEPTH, POOL):  # in flight: the newest blocks
                            self._complete(pending)
                        if self.stop.is_set():
                            raise Cancelled("Audit stopped.")
                        b, at = self._buffer(), f.issued
                        pending.append((b, f, at, self.io.submit(f.fill, b, at)))
                        f.issued += min(BLOCK, f.size - at)
            while pending:
                self._complete(pending)
        except BaseException as exc:
            self.error = exc
            for _, _, _, read in pending:  # let the buffers settle before they are freed
                read.exception()
        finally:
            for q in self.queues:
                q.put(None)
            with self.cond:
                self.done = True
                self.cond.notify_all()
