"""`companion store check`: integrity of the store file, and what to do if it is damaged."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from companion.errors import StoreError
from companion.store.db import check_owner
from companion.store.migrations import MIGRATIONS, applied
from companion.store.schemas import CheckResult

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
    elif result.status == "newer":
        result.advice = "upgrade companion, or point COMPANION_STORE_PATH at another file."
    elif result.status == "ok":
        result.advice = "nothing to do." + (
            " Pending migrations run on the next open." if result.pending_migrations else ""
        )
    return result


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
    result.migrations = applied(conn)
    known = [name for name, _ in MIGRATIONS]
    if any(name not in known for name in result.migrations):
        result.status = "newer"
        result.problems.append("written by a newer companion (unknown migrations)")
        return
    result.pending_migrations = [n for n in known if n not in result.migrations]
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for table in _TABLES:
        if table in present:
            result.counts[table] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
