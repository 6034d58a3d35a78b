"""One input file of the audit's reader, and the pool buffers its blocks are read into.

A block at least half in the page cache (asked with the cachestat system call, which starts
no I/O, unlike a RWF_NOWAIT read) is copied from it with a buffered read, which fetches only
its missing pages: memory reclaim (DAMON's, on this machine kind) leaves warm files with
scattered holes, and reading such blocks whole from the disk took 3.7 times as long. Any other
block is read with O_DIRECT, straight into the pool buffer: on cold data this runs at the
disk's direct-read speed and leaves the page cache alone (first touches of fresh page-cache
pages are slow on virtual machines).
"""

from __future__ import annotations

import hashlib
import mmap
import os
from pathlib import Path

from companion.audit.pagecache import cached_pages
from companion.digests import Digests
from companion.errors import InputError

_ALIGN = 4096
_DIRECT = getattr(os, "O_DIRECT", 0)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _warm(size: int) -> int:
    """Cached pages from which a file counts as in the page cache (nine tenths of it)."""
    return -(-size // _PAGE) * 9 // 10


class Block:
    """One pool buffer holding bytes [offset, offset + n) of a file."""

    def __init__(self, huge: bool, size: int) -> None:
        # Page-aligned, as O_DIRECT needs; private (a shared anonymous map is backed by
        # shmem, slower to fault in). In huge pages for direct reads (pinning 4 KB pages cost
        # a cold audit 1.96 s, not 1.59), else in small pages: free huge pages are the ones
        # a VM's balloon hands back to its host, so a fresh one is faulted in on the host too
        # (0.2 s of CPU for the 14 blocks in a warm audit, against 0.06 s in small pages).
        self.buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
        if huge and hasattr(mmap, "MADV_HUGEPAGE"):
            self.buf.madvise(mmap.MADV_HUGEPAGE)
        self.view = memoryview(self.buf)
        self.size = size
        self.owner: ReadFile | None = None
        self.offset = self.n = self.pins = 0
        self.hashed = True


class ReadFile:
    """One input file: descriptors, read cursor, running hash and its blocks in the pool."""

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
        self.cursor = 0  # bytes read (and published to the workers)
        self.issued = 0  # bytes whose reads were started
        self.hash = hashlib.sha256()
        self.known = digests.known(path, self.stat)
        self.blocks: dict[int, Block] = {}
        self.direct_fd: int | None = None
        cached = cached_pages(self.fd, 0, self.size)
        # A file the digest cache vouches for is left to the workers' preads when its pages
        # are (mostly) in the page cache; else it is read here too, without hashing.
        self.advised = self.known is not None and (cached is None or cached >= _warm(self.size))
        if not self.advised and cached is not None:
            try:
                self.direct_fd = os.open(path, os.O_RDONLY | _DIRECT)
            except OSError:  # e.g. tmpfs: buffered reads only
                self.direct_fd = None
        self.cold = self.direct_fd is not None and cached is not None and cached < _warm(self.size)
        if self.direct_fd is not None:
            # buffered reads then only fill the holes of mostly cached blocks: the kernel's
            # readahead would read on into the next (cold) blocks through the page cache
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_RANDOM)
        self.direct = self.direct_fd  # None once direct reads fail (closed only in close())

    def close(self) -> None:
        """Close both descriptors."""
        os.close(self.fd)
        if self.direct_fd is not None:
            os.close(self.direct_fd)

    def fill(self, block: Block, offset: int) -> int:
        """Read the block at `offset`: O_DIRECT when most of it is outside the page cache,
        else a buffered read (the kernel reads only the missing pages)."""
        want, direct = min(block.size, self.size - offset), self.direct
        cached = cached_pages(self.fd, offset, want) if direct is not None else None
        if direct is not None and cached is not None and 2 * cached < -(-want // _PAGE):
            try:
                aligned = min(block.size, -(-want // _ALIGN) * _ALIGN)
                return min(os.preadv(direct, [block.view[:aligned]], offset), want)
            except OSError:  # the file system refused direct reads after all
                self.direct = None  # every block is buffered now: readahead back on
                os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_NORMAL)
        return os.preadv(self.fd, [block.view[:want]], offset)
