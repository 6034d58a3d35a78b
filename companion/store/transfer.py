"""`companion store migrate-to URL`: copy an SQLite store into PostgreSQL, verified per table.

Both stores are migrated to the same schema first. The copy runs in one PostgreSQL
transaction; it commits only when every table has the same row count and the same checksum
(sha256 over its rows in primary-key order) on both sides, so a failed copy leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from companion.errors import InputError, StoreError
from companion.jobs import Job
from companion.store.backend import Conn
from companion.store.db import open_store
from companion.store.postgres import PgConnection, PostgresBackend
from companion.store.schemas import MigrateResult, TableCopy


def copy_order(conn: Conn) -> list[str]:
    """The SQLite store's data tables, each after the tables it references."""
    names = sorted(
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'schema_migrations'"
        )
    )
    refs = {
        n: {str(r[2]) for r in conn.execute(f"PRAGMA foreign_key_list({n})")} - {n} for n in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and refs[n] <= set(ordered)]
        if not ready:  # a reference cycle: none in our schema, but never loop forever
            ready = [n for n in names if n not in ordered]
        ordered += ready
    return ordered


def columns(conn: Conn, table: str) -> tuple[list[str], list[str]]:
    """(every column, the primary-key columns in key order) of an SQLite table."""
    info = conn.execute(f"PRAGMA table_info({table})").fetchall()
    cols = [str(r[1]) for r in info]
    pk = [str(r[1]) for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
    return cols, pk or cols


def _select(table: str, cols: list[str], pk: list[str]) -> str:
    """The one statement both sides are read with (same columns, same order)."""
    return f"SELECT {', '.join(cols)} FROM {table} ORDER BY {', '.join(pk)}"


def table_digest(conn: Conn, table: str, cols: list[str], pk: list[str]) -> tuple[int, str]:
    """(row count, sha256 of the rows as canonical JSON lines) of one table."""
    digest = hashlib.sha256()
    n = 0
    for row in conn.execute(_select(table, cols, pk)):
        digest.update(json.dumps([_canonical(v) for v in row], separators=(",", ":")).encode())
        digest.update(b"\n")
        n += 1
    return n, digest.hexdigest()


def _canonical(value: Any) -> Any:
    """A value as both drivers agree on it (bytes as hex)."""
    return value.hex() if isinstance(value, bytes | bytearray | memoryview) else value


def _rows(conn: Conn, table: str, cols: list[str], pk: list[str]) -> Iterator[tuple[Any, ...]]:
    """The table's rows as tuples, streamed."""
    for row in conn.execute(_select(table, cols, pk)):
        yield tuple(row)


def _refuse_filled(dst: PgConnection, tables: list[str], label: str) -> None:
    """migrate-to fills an empty store only: merging two stores is not a copy."""
    filled = [t for t in tables if dst.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]
    if filled:
        raise StoreError(
            f"The PostgreSQL store {label} already holds data (tables: {', '.join(filled)}).",
            hint="migrate-to copies into an empty database: create one (`createdb NAME`) and "
            "pass its URL.",
        )


def migrate_to(source: Path, url: str, job: Job) -> MigrateResult:
    """Copy every table of the SQLite store at `source` into the PostgreSQL store at `url`."""
    if not source.is_file():
        raise InputError(
            f"There is no SQLite store at {source} to copy.",
            hint="pass --source FILE, or set COMPANION_STORE_PATH to the store to copy.",
        )
    target = PostgresBackend(url)
    with open_store(source) as src, open_store(target) as dst:
        assert isinstance(dst, PgConnection)
        tables = copy_order(src)
        _refuse_filled(dst, tables, target.label)
        src.execute("BEGIN")  # one read snapshot of the whole file
        dst.execute("BEGIN")
        try:
            copied = [_copy_table(src, dst, t, job) for t in tables]
        except BaseException:
            dst.execute("ROLLBACK")
            raise
        finally:
            src.execute("COMMIT")
        dst.execute("COMMIT")
    return MigrateResult(source=str(source), target=target.label, tables=copied)


def _copy_table(src: Conn, dst: PgConnection, table: str, job: Job) -> TableCopy:
    """Copy one table, then compare counts and checksums on both sides (inside the copy)."""
    job.report(f"copying {table}")
    cols, pk = columns(src, table)
    dst.copy_rows(table, cols, _rows(src, table, cols, pk))
    if "id" in cols:
        dst.reset_identity(table)
    job.check()
    n_src, sum_src = table_digest(src, table, cols, pk)
    n_dst, sum_dst = table_digest(dst, table, cols, pk)
    if (n_src, sum_src) != (n_dst, sum_dst):
        raise StoreError(
            f"Copying {table} did not verify: {n_src} rows (sha256 {sum_src[:12]}) in SQLite, "
            f"{n_dst} rows (sha256 {sum_dst[:12]}) in PostgreSQL. Nothing was committed.",
            hint="run `companion store check` on the SQLite file; report the table if it is ok.",
        )
    return TableCopy(table=table, rows=n_src, sha256=sum_src)
