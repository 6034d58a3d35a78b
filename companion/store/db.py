"""Opening the store: the SQLite backend (WAL mode, busy timeout, foreign/corrupt file
detection) and the backend-neutral entry points (open_store, settings_store, transactions)."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from companion.errors import StoreError
from companion.settings import Settings
from companion.store.backend import Backend, Conn, dialect_of, is_url
from companion.store.dialect import SQLITE
from companion.store.migrations import APPLICATION_ID, migrate

T = TypeVar("T")

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


def _use_wal(conn: sqlite3.Connection) -> str:
    """Switch the file to write-ahead logging (it stays so); return the journal mode.

    Converting a fresh file races the other processes opening it for the first time, and
    SQLite reports that race as "database is locked" at once, without waiting on the busy
    timeout (7 of 180 opens failed so, twelve processes at a time): retry until the timeout."""
    deadline, pause = time.monotonic() + BUSY_TIMEOUT_S, 0.001
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode == "wal":
                return mode
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.1)


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
        if _use_wal(conn) != "wal":
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


class SqliteBackend:
    """The default store: one SQLite file (WAL; writers wait on the busy timeout)."""

    dialect = SQLITE
    error_types: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)

    def connect(self) -> Conn:
        """Open (creating if absent) and migrate the file."""
        return connect(self.path)

    def translate(self, exc: BaseException) -> BaseException:
        """The StoreError naming the fix for an sqlite3 error."""
        return store_error(self.path, exc) if isinstance(exc, sqlite3.Error) else exc

    def run(self, work: Callable[[Conn], T]) -> T:
        """Run `work` on a fresh connection (SQLite's busy timeout already waits for writers)."""
        with open_store(self) as conn:
            return work(conn)


def as_backend(target: Backend | Path | str) -> Backend:
    """The backend for a file path, a `postgresql://` URL, or a backend as is."""
    if isinstance(target, str) and is_url(target):
        from companion.store.postgres import PostgresBackend

        return PostgresBackend(target)
    if isinstance(target, str | Path):
        return SqliteBackend(Path(target))
    return target


def backend_for(settings: Settings) -> Backend:
    """The store the settings point at: `store_url` when set, else the SQLite file."""
    if settings.store_url:
        return as_backend(settings.store_url)
    return as_backend(settings.resolved_store_path())


@contextmanager
def open_store(target: Backend | Path | str) -> Iterator[Conn]:
    """A migrated connection to a file, URL or backend, closed on exit; errors name a fix."""
    backend = as_backend(target)
    conn = backend.connect()
    try:
        yield conn
    except backend.error_types as exc:
        raise backend.translate(exc) from None
    finally:
        with contextlib.suppress(*backend.error_types):
            conn.close()


@contextmanager
def settings_store(settings: Settings) -> Iterator[Conn]:
    """The store the settings point at (`store_url`, else the SQLite file)."""
    with open_store(backend_for(settings)) as conn:
        yield conn


@contextmanager
def write_transaction(conn: Conn) -> Iterator[Conn]:
    """One short write transaction: all of it commits, or none of it is visible."""
    conn.execute(dialect_of(conn).begin_write)
    try:
        yield conn
    except BaseException:
        # The original error matters; a rollback on a lost connection would only mask it.
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
