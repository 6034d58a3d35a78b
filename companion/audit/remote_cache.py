"""The files of the on-disk range cache: which entries can be trusted, and completing one.

An entry `<a>-<b>` counts only as a regular file (not a symlink, FIFO or folder) of exactly
b - a bytes; anything else (a crash that truncated it, a file replaced by hand) is fetched
again and replaced, so a damaged cache repairs itself instead of failing every later run.
A `.part` is written only under an exclusive lock, so two audits of one file (two processes)
never append to it at once: the second waits, then finds the range complete. A whole-file
download starts only when the cache's disk has room for it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from companion.errors import InputError

_ENTRY = re.compile(r"(\d+)-(\d+)")


def entries(folder: Path) -> list[tuple[int, int]]:
    """The trustworthy cached ranges [a, b) in a blob's cache folder, in order."""
    try:
        listing = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for e in listing:
        if (m := _ENTRY.fullmatch(e.name)) is None:
            continue
        a, b = int(m.group(1)), int(m.group(2))
        try:
            st = e.stat(follow_symlinks=False)
        except FileNotFoundError:  # replaced meanwhile
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size == b - a:
            out.append((a, b))
    return sorted(out)


def complete(part: Path, entry: Path) -> None:
    """Rename a finished .part to its entry name (replacing a damaged entry)."""
    try:
        part.replace(entry)
    except OSError as exc:
        raise InputError(
            f"Cannot write the range cache entry {entry}: {exc.strerror or exc}.",
            hint=f"remove {entry} (or the cache folder {entry.parent}) and run again.",
        ) from None


def unwritable(folder: Path, exc: OSError) -> InputError:
    """The error for a failed write into a blob's cache folder (disk full, read-only, ...)."""
    return InputError(
        f"Cannot write the range cache in {folder.parent}: {exc.strerror or exc}.",
        hint="free disk space there, or set remote_cache_dir to a writable disk with room.",
    )


def make_room(root: Path, need: int, what: str) -> None:
    """Refuse to download `need` bytes (`what`) into the cache at `root` if its disk lacks room."""
    there = root
    while not there.exists() and there != there.parent:  # the cache may not exist yet
        there = there.parent
    free = shutil.disk_usage(there).free
    if need > free:
        raise InputError(
            f"{what} needs {need:,} bytes, but the range cache ({root}) has {free:,} bytes "
            "free; nothing was downloaded.",
            hint="free disk space there, or set remote_cache_dir to a disk with room.",
        )


@contextmanager
def locked(part: Path) -> Iterator[BinaryIO]:
    """`part` open for appending under an exclusive lock (held until the block ends)."""
    with part.open("ab") as fh:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield fh
