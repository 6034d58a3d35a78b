"""Opening the store: WAL mode, busy timeout, foreign/corrupt file detection, transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from companion.errors import StoreError
from companion.settings import Settings
from companion.store.migrations import APPLICATION_ID, migrate

# Written into the database header by the first migration; tells our files from anyone else's.
# Writers wait this long for each other instead of failing with "database is locked".
BUSY_TIMEOUT_S = 30.0


def _move_aside_hint(path: Path) -> str:
    """The fix for a file we must not touch: move it aside (nothing is deleted for you)."""
    return (
        f"run `companion store check` for details; to start a fresh store, move the file aside "
        f"(`mv '{path}' '{path}.bad'`) or point COMPANION_STORE_PATH at another file. "
        "companion never deletes or recreates an existing store."
    )


def store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """Translate an sqlite3 error into a StoreError that names the fix."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return StoreError(
            f"The audit store {path} stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s.",
            hint="retry, or check for a stuck `companion` process; use --no-store to skip "
            "recording this run.",
        )
    if isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text or "corrupt" in text
    ):
        return StoreError(
            f"The audit store {path} is damaged ({text}).", hint=_move_aside_hint(path)
        )
    if isinstance(exc, sqlite3.OperationalError) and (
        "unable to open" in text or "readonly" in text or "disk I/O" in text
    ):
        return StoreError(
            f"Cannot write the audit store {path} ({text}).",
            hint="check the directory exists and is writable, or set COMPANION_STORE_PATH "
            "(or COMPANION_HOME) to a writable location; --no-store skips recording.",
        )
    return StoreError(f"Audit store error on {path}: {text}.", hint=_move_aside_hint(path))


def _not_sqlite(path: Path) -> StoreError:
    """The error for a file that exists but is not an SQLite database."""
    return StoreError(
        f"{path} is not an SQLite database, so it cannot be the companion audit store.",
        hint=_move_aside_hint(path),
    )


def check_owner(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a file that is not SQLite, or an SQLite database of another application.

    The file is only ever read through SQLite: opening and closing it with another file
    descriptor would drop the POSIX locks of this process's other connections (and corrupt
    the store under concurrent writers).
    """
    try:
        # One statement, so one consistent snapshot even while another process migrates.
        app_id, tables = conn.execute(
            "SELECT (SELECT application_id FROM pragma_application_id), "
            "(SELECT group_concat(name, ', ') FROM sqlite_master WHERE type = 'table')"
        ).fetchone()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise _not_sqlite(path) from None
        raise
    if app_id == APPLICATION_ID or (app_id == 0 and not tables):
        return
    listed = ", ".join((tables or "").split(", ")[:5]) or "none"
    raise StoreError(
        f"{path} is an SQLite database of another application "
        f"(application_id={app_id:#x}, tables: {listed}).",
        hint=_move_aside_hint(path),
    )


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if absent) and migrate the store at `path`; errors name a fix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the store directory {path.parent}: {exc.strerror or exc}.",
            hint="set COMPANION_HOME or COMPANION_STORE_PATH to a writable location.",
        ) from None
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        check_owner(conn, path)
        if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise StoreError(
                f"The audit store {path} cannot use write-ahead logging.",
                hint="put the store on a local file system (set COMPANION_STORE_PATH).",
            )
        # NORMAL in WAL mode: a committed transaction survives any process crash (kill -9).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn, path)
        return conn
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise store_error(path, exc) from None
    except BaseException:
        if conn is not None:
            conn.close()
        raise


@contextmanager
def open_store(path: Path) -> Iterator[sqlite3.Connection]:
    """A migrated connection, closed on exit; sqlite errors become StoreError."""
    conn = connect(path)
    try:
        yield conn
    except sqlite3.Error as exc:
        raise store_error(path, exc) from None
    finally:
        conn.close()


@contextmanager
def settings_store(settings: Settings) -> Iterator[sqlite3.Connection]:
    """The store the settings point at."""
    with open_store(settings.resolved_store_path()) as conn:
        yield conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One short IMMEDIATE transaction: all of it commits, or none of it is visible."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
