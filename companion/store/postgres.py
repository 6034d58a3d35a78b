"""The shared store on PostgreSQL (psycopg 3): connections shaped like sqlite3's, retries, errors.

psycopg is an optional extra (`pip install 'companion[postgres]'`), imported only when a
`postgresql://` store is opened.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from companion.errors import StoreError
from companion.store.backend import Conn
from companion.store.dialect import POSTGRES
from companion.store.migrations import migrate

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")
# How long a lost connection (server restart, failover) is retried before giving up.
RECONNECT_S = 30.0
CONNECT_TIMEOUT_S = 10
_TRANSIENT_STATES = ("57P01", "57P02", "57P03", "40001", "40P01")
_TRANSIENT_TEXT = (
    "connection refused",
    "no such file or directory",
    "the database system is",
    "server closed the connection",
    "terminating connection",
    "connection is lost",
    "connection is closed",
    "consuming input failed",
)


def redact(url: str) -> str:
    """The URL without its password (in the user part or the query), for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = user.split(":", 1)[0] + "@" + host
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Row:
    """A result row readable by column name and by index, like sqlite3.Row."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values, self._index = tuple(values), index

    def __getitem__(self, key: int | str | slice) -> Any:
        """A column by position or name (a slice gives a tuple, as sqlite3.Row does)."""
        return self._values[self._index[key] if isinstance(key, str) else key]

    def __iter__(self) -> Iterator[Any]:
        """The values in column order."""
        return iter(self._values)

    def __len__(self) -> int:
        """The number of columns."""
        return len(self._values)

    def keys(self) -> list[str]:
        """The column names (so `dict(row)` works)."""
        return list(self._index)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    """psycopg row factory building `Row`s for one result."""
    names = [c.name for c in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}
    return lambda values: Row(values, index)


class PgConnection:
    """A psycopg connection with sqlite3's interface (`?` placeholders, explicit BEGIN)."""

    dialect = POSTGRES

    def __init__(self, raw: psycopg.Connection[Row]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Any = None, /) -> Any:
        """Run one statement written in SQLite's text (rows come back as `Row`)."""
        params = list(parameters) if parameters else None
        return self.raw.execute(self.dialect.convert(sql, params is not None), params)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> psycopg.Cursor[Row]:
        """Run one statement for every parameter row (pipelined by psycopg)."""
        cursor = self.raw.cursor()
        cursor.executemany(self.dialect.convert(sql, True), parameters)
        return cursor

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Bulk-load rows with COPY (the fast path of `store migrate-to`); returns the count."""
        n = 0
        with self.raw.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        return n

    def reset_identity(self, table: str) -> None:
        """Move a table's id sequence (if it has one) past the ids copied in explicitly."""
        (sequence,) = self.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()
        if sequence is not None:
            self.execute(
                f"SELECT setval(?, (SELECT COALESCE(max(id), 0) + 1 FROM {table}), false)",
                (sequence,),
            )

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()


def _transient(exc: BaseException) -> bool:
    """Whether an error is a lost or refused connection (or a retryable conflict)."""
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None) or ""
    text = str(exc).lower()
    return (
        state.startswith("08")
        or state in _TRANSIENT_STATES
        or any(t in text for t in _TRANSIENT_TEXT)
    )


class PostgresBackend:
    """A shared store in a PostgreSQL database, selected by `store_url`."""

    dialect = POSTGRES

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "The audit store is a PostgreSQL URL, but psycopg is not installed.",
                hint="install the extra: pip install 'companion[postgres]' (or unset "
                "COMPANION_STORE_URL to use the SQLite file).",
            ) from None
        self.url = url
        self.label = redact(url)
        self.error_types: tuple[type[BaseException], ...] = (psycopg.Error,)

    def open_raw(self) -> PgConnection:
        """A connection without migrating, retried while the server is (re)starting."""
        import psycopg

        deadline = time.monotonic() + RECONNECT_S
        delay = 0.05
        while True:
            try:
                raw = psycopg.connect(
                    self.url,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    row_factory=_row_factory,
                    application_name="companion",
                )
                return PgConnection(raw)
            except psycopg.Error as exc:
                if not _transient(exc) or time.monotonic() + delay > deadline:
                    raise self.translate(exc) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def connect(self) -> Conn:
        """Open and migrate (under an advisory lock, so concurrent first opens are safe)."""
        conn = self.open_raw()
        try:
            migrate(conn, self.label)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, self.error_types):
                raise self.translate(exc) from None
            raise
        return conn

    def run(self, work: Callable[[Conn], T]) -> T:
        """Run `work` on a fresh connection; a lost connection is retried on a new one."""
        deadline = time.monotonic() + RECONNECT_S
        while True:
            conn = self.connect()
            try:
                return work(conn)
            except self.error_types as exc:
                if not _transient(exc) or time.monotonic() > deadline:
                    raise self.translate(exc) from None
            finally:
                with contextlib.suppress(*self.error_types):
                    conn.close()
            time.sleep(0.1)

    def translate(self, exc: BaseException) -> BaseException:
        """The StoreError naming the next step for a psycopg error."""
        import psycopg

        if not isinstance(exc, psycopg.Error):
            return exc
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            role = self._role()
            return StoreError(
                f"The PostgreSQL role {role} may not write the audit store {self.label} ({text}).",
                hint=f"use --no-store to skip recording; or ask the database owner to "
                f"`GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}` and "
                f"`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}`; or point "
                "COMPANION_STORE_URL at a role that may write.",
            )
        if isinstance(exc, psycopg.OperationalError):
            return StoreError(
                f"Cannot reach the PostgreSQL audit store {self.label} ({text}).",
                hint="check that the server is up and accepts this URL (`pg_isready -d URL`), "
                "fix COMPANION_STORE_URL, or use --no-store to skip recording.",
            )
        return StoreError(
            f"Audit store error on {self.label}: {text}.",
            hint="run `companion store check` to see the store's state and schema version.",
        )

    def _role(self) -> str:
        """The user name in the URL (for the GRANT advice)."""
        import psycopg

        try:
            return psycopg.conninfo.conninfo_to_dict(self.url).get("user") or "<role>"  # type: ignore[return-value]
        except psycopg.Error:
            return "<role>"
