"""`companion store check`: integrity of the store, and what to do if it is damaged."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from companion.errors import StoreError
from companion.store.backend import Backend, Conn, dialect_of
from companion.store.db import SqliteBackend, check_owner
from companion.store.migrations import MIGRATIONS, applied
from companion.store.schemas import CheckResult

if TYPE_CHECKING:
    from companion.store.postgres import PostgresBackend

_TABLES = (
    "records",
    "models",
    "artifacts",
    "audits",
    "per_tensor",
    "evidence_summaries",
    "tokenizer_comparisons",
    "chat_transcripts",
)


def _recover_advice(path: Path) -> str:
    """How to salvage a damaged file without losing what is readable."""
    return (
        "stop every companion process, then either recover what is readable with "
        f"`sqlite3 '{path}' .recover | sqlite3 '{path}.recovered'` and move the recovered file "
        f"into place, or move the file aside (`mv '{path}' '{path}.bad'`) to start a new store. "
        "companion never deletes it for you."
    )


def check_store(path: Path) -> CheckResult:
    """Inspect a store file without changing it (no migration, no writes)."""
    result = CheckResult(path=str(path), status="ok")
    if not path.exists():
        result.status = "missing"
        result.advice = "nothing to do: the store is created on the first recorded run."
        return result
    result.size_bytes = path.stat().st_size
    wal = path.with_name(path.name + "-wal")
    result.wal_bytes = wal.stat().st_size if wal.exists() else 0
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        check_owner(conn, path)
        _inspect(conn, result)
    except StoreError as exc:
        result.status, result.problems, result.advice = "foreign", [exc.message], exc.hint or ""
    except sqlite3.DatabaseError as exc:
        result.status = "corrupt"
        result.problems.append(str(exc))
    finally:
        conn.close()
    if result.status == "corrupt":
        result.advice = _recover_advice(path)
    return _advise(result)


def _advise(result: CheckResult) -> CheckResult:
    """The next step for a store that is ok, newer than us, or not created yet."""
    if result.status == "newer":
        result.advice = (
            "upgrade companion, or point COMPANION_STORE_PATH (or COMPANION_STORE_URL) at "
            "another store."
        )
    elif result.status == "ok":
        result.advice = "nothing to do." + (
            " Pending migrations run on the next open." if result.pending_migrations else ""
        )
    return result


def check_backend(backend: Backend) -> CheckResult:
    """Inspect any store without changing it: the SQLite file, or the PostgreSQL database."""
    if isinstance(backend, SqliteBackend):
        return check_store(backend.path)
    from companion.store.postgres import PostgresBackend

    assert isinstance(backend, PostgresBackend)
    return check_postgres(backend)


def check_postgres(backend: PostgresBackend) -> CheckResult:
    """Inspect a PostgreSQL store without changing it (no migration, no writes)."""
    result = CheckResult(path=backend.label, status="ok")
    conn = backend.open_raw()
    try:
        result.size_bytes = int(
            conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        )
        if "schema_migrations" not in _tables(conn):
            result.status = "missing"
            result.advice = "nothing to do: the tables are created on the first recorded run."
            return result
        inspect_schema(conn, result)
    except backend.error_types as exc:
        raise backend.translate(exc) from None
    finally:
        conn.close()
    return _advise(result)


def _tables(conn: Conn) -> set[str]:
    """Names of the tables in the store."""
    return {str(r[0]) for r in conn.execute(dialect_of(conn).list_tables)}


def _inspect(conn: sqlite3.Connection, result: CheckResult) -> None:
    """Integrity and foreign-key checks, schema version and row counts."""
    problems = [r[0] for r in conn.execute("PRAGMA integrity_check(50)")]
    if problems != ["ok"]:
        result.status = "corrupt"
        result.problems += problems
        return
    fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    if fk:
        result.status = "corrupt"
        result.problems += [f"dangling reference in {r[0]} row {r[1]} to {r[2]}" for r in fk[:20]]
    inspect_schema(conn, result)


def inspect_schema(conn: Conn, result: CheckResult) -> None:
    """Schema version (applied, unknown and pending migrations) and row counts."""
    result.migrations = applied(conn)
    known = [name for name, _ in MIGRATIONS]
    if any(name not in known for name in result.migrations):
        result.status = "newer"
        result.problems.append("written by a newer companion (unknown migrations)")
        return
    result.pending_migrations = [n for n in known if n not in result.migrations]
    present = _tables(conn)
    for table in _TABLES:
        if table in present:
            result.counts[table] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
