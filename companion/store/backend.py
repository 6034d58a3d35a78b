"""The store backend interface: SQLite (one person, one file) or PostgreSQL (a shared team store).

Everything above this module talks to a `Conn` (sqlite3's shape: `execute` with `?`
placeholders, rows readable by name and by index) and never to a driver directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from companion.store.dialect import SQLITE, Dialect

T = TypeVar("T")


class Cursor(Protocol):
    """What a query returns: rows by fetch or by iteration."""

    def fetchone(self) -> Any:
        """The next row, or None."""

    def fetchall(self) -> list[Any]:
        """The remaining rows."""

    def __iter__(self) -> Iterator[Any]:
        """The remaining rows, one at a time."""


class Conn(Protocol):
    """An open, migrated store connection (sqlite3.Connection or the PostgreSQL adapter)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any:
        """Run one statement written in SQLite's text."""

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any:
        """Run one statement for every parameter row."""

    def close(self) -> None:
        """Close the connection."""


class Backend(Protocol):
    """One store: where it is, how to open it, and how its errors read."""

    dialect: Dialect
    label: str  # where the store is, for people (never a password)
    error_types: tuple[type[BaseException], ...]

    def connect(self) -> Conn:
        """Open and migrate the store."""

    def translate(self, exc: BaseException) -> BaseException:
        """The StoreError (naming the next step) for one of `error_types`."""

    def run(self, work: Callable[[Conn], T]) -> T:
        """Run `work` on a fresh connection; retried when the connection is lost mid-way."""


def is_url(target: str) -> bool:
    """Whether a store target is a PostgreSQL URL rather than a file path."""
    return target.startswith(("postgresql://", "postgres://"))


def dialect_of(conn: Conn) -> Dialect:
    """The dialect of an open connection (a bare sqlite3 connection is SQLite)."""
    dialect = getattr(conn, "dialect", SQLITE)
    return dialect if isinstance(dialect, Dialect) else SQLITE
