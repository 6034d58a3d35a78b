"""A cache of file sha256 digests, trusted only while stat says the file is untouched.

Hashing is the largest fixed cost of a weight audit (sha256 runs at about 2 GB/s per core),
and the same base model is audited against many candidates. Like git's index, an entry is
keyed by what `stat` reports: device, inode, size, mtime and ctime (in nanoseconds). Any
write, truncation, replacement or rename-over changes at least one of them, and ctime cannot
be set back from user space. A digest is stored only when the file did not change while it
was hashed and was last changed at least `_SETTLE_NS` before hashing began (so a write in the
same clock tick as the hash cannot slip past). Manifests say which digests came from here;
`companion verify` always re-reads. A broken or locked cache file is ignored with a warning.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path

log = logging.getLogger(__name__)
_SETTLE_NS = 2_000_000_000
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, dev INTEGER NOT NULL,"
    " ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
    " ctime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)"
)
Key = tuple[int, int, int, int, int]


def stat_key(st: os.stat_result) -> Key:
    """The stat fields a cached digest is tied to."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Digests:
    """Digest lookups and records against one SQLite file (None: caching off)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        """A connection with the table in place."""
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=2.0)
        conn.execute(_SCHEMA)
        return conn

    def _fail(self, exc: Exception) -> None:
        """Stop using a cache file that cannot be read or written."""
        log.warning(
            "Digest cache %s unusable (%s); hashing every file. Delete it to start afresh.",
            self.path,
            exc,
        )
        self.path = None

    def known(self, path: Path, st: os.stat_result) -> str | None:
        """The cached sha256 of `path` if its stat still matches the one it was hashed at."""
        if self.path is None:
            return None
        try:
            with closing(self._connect()) as conn:
                row = conn.execute(
                    "SELECT dev, ino, size, mtime_ns, ctime_ns, sha256 FROM digests WHERE path = ?",
                    (str(path),),
                ).fetchone()
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
            return None
        if row is None or tuple(row[:5]) != stat_key(st):
            return None
        return str(row[5])

    def remember(self, path: Path, before: os.stat_result, digest: str, started_ns: int) -> None:
        """Store a digest taken from `started_ns` on, if the file stayed settled throughout."""
        if self.path is None:
            return
        try:
            after = os.stat(path)
        except OSError:
            return
        settled = max(before.st_mtime_ns, before.st_ctime_ns) < started_ns - _SETTLE_NS
        if not settled or stat_key(after) != stat_key(before):
            return
        try:
            with closing(self._connect()) as conn, conn:
                conn.execute(
                    "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (str(path), *stat_key(before), digest),
                )
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
