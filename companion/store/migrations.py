"""Schema migrations: an ordered list of named functions, each recorded in `schema_migrations`.

Every open runs `migrate`. Applied names are stored, so a migration runs once per file; a name
we do not know means a newer companion wrote the file, and we refuse rather than guess.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from companion.errors import StoreError
from companion.store.backend import Conn, dialect_of

# Written in SQLite's DDL; on PostgreSQL the dialect maps the types (store/dialect.py).
Migration = Callable[[Conn], None]

# Numeric per-tensor metrics that get their own (indexable) column; the rest go to `extra`.
METRIC_COLUMNS: tuple[str, ...] = ("cosine", "pearson", "spearman", "rel_l2", "z", "p")

APPLICATION_ID = 0x434D504E  # "CMPN": marks an SQLite file as a companion store


def _run(conn: Conn, script: str) -> None:
    """Execute `;`-separated statements inside the caller's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement.strip())


def m0001_records_models_artifacts(conn: Conn) -> None:
    """Every recorded run, the models and files it read, and the links between them."""
    if dialect_of(conn).name == "sqlite":
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    _run(
        conn,
        """
        CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            created TEXT NOT NULL,
            verdict TEXT,
            reasons TEXT NOT NULL DEFAULT '[]',
            args TEXT NOT NULL,
            result TEXT NOT NULL,
            manifest TEXT,
            tool_version TEXT
        );
        CREATE INDEX records_created ON records(created);
        CREATE INDEX records_kind ON records(kind, created);
        CREATE INDEX records_verdict ON records(verdict, created);
        CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            content_sha256 TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            path TEXT NOT NULL,
            arch_spec TEXT,
            first_seen TEXT NOT NULL
        );
        CREATE INDEX models_name ON models(name);
        CREATE INDEX models_path ON models(path);
        CREATE TABLE artifacts (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            UNIQUE (path, sha256)
        );
        CREATE INDEX artifacts_sha256 ON artifacts(sha256);
        CREATE TABLE record_models (
            record_id INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            model_id INTEGER NOT NULL REFERENCES models(id),
            side TEXT NOT NULL,
            PRIMARY KEY (record_id, model_id, side)
        ) WITHOUT ROWID;
        CREATE INDEX record_models_model ON record_models(model_id);
        CREATE TABLE record_artifacts (
            record_id INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
            model_id INTEGER REFERENCES models(id),
            PRIMARY KEY (record_id, artifact_id)
        ) WITHOUT ROWID;
        CREATE INDEX record_artifacts_artifact ON record_artifacts(artifact_id)
        """,
    )


def m0002_audits_per_tensor(conn: Conn) -> None:
    """Weight audits (the pair, tensor count) and their per-tensor metrics with baselines."""
    metrics = ",\n".join(f"            {m} REAL" for m in METRIC_COLUMNS)
    _run(
        conn,
        f"""
        CREATE TABLE audits (
            record_id INTEGER PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,
            model_a INTEGER REFERENCES models(id),
            model_b INTEGER REFERENCES models(id),
            verdict TEXT,
            n_tensors INTEGER NOT NULL
        );
        CREATE INDEX audits_pair ON audits(model_a, model_b);
        CREATE TABLE per_tensor (
            id INTEGER PRIMARY KEY,
            record_id INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            name_a TEXT,
            name_b TEXT,
            role TEXT,
            layer INTEGER,
{metrics},
            extra TEXT NOT NULL DEFAULT '{{}}'
        );
        CREATE INDEX per_tensor_record ON per_tensor(record_id);
        CREATE INDEX per_tensor_role_pearson ON per_tensor(role, pearson, record_id);
        CREATE INDEX per_tensor_role_cosine ON per_tensor(role, cosine, record_id)
        """,
    )


def m0003_evidence_tokenizers(conn: Conn) -> None:
    """Evidence summaries and tokenizer comparisons, with their headline numbers."""
    _run(
        conn,
        """
        CREATE TABLE evidence_summaries (
            record_id INTEGER PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,
            model_id INTEGER REFERENCES models(id),
            verdict TEXT,
            headline TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE tokenizer_comparisons (
            record_id INTEGER PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,
            model_a INTEGER REFERENCES models(id),
            model_b INTEGER REFERENCES models(id),
            verdict TEXT,
            headline TEXT NOT NULL DEFAULT '{}'
        )
        """,
    )


def m0004_chat_transcripts(conn: Conn) -> None:
    """Chat conversations, one row per conversation id."""
    _run(
        conn,
        """
        CREATE TABLE chat_transcripts (
            id TEXT PRIMARY KEY,
            messages TEXT NOT NULL,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        CREATE INDEX chat_transcripts_updated ON chat_transcripts(updated)
        """,
    )


def m0005_fingerprints(conn: Conn) -> None:
    """Model fingerprints (one per content digest and scheme), failed ones with their error."""
    _run(
        conn,
        """
        CREATE TABLE fingerprints (
            id INTEGER PRIMARY KEY,
            record_id INTEGER REFERENCES records(id) ON DELETE CASCADE,
            model_id INTEGER REFERENCES models(id),
            content_sha256 TEXT NOT NULL,
            scheme TEXT NOT NULL,
            path TEXT NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            hidden INTEGER,
            layers INTEGER,
            nbytes INTEGER,
            sketch TEXT,
            data TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL,
            UNIQUE (content_sha256, scheme)
        );
        CREATE INDEX fingerprints_status ON fingerprints(status, scheme);
        CREATE INDEX fingerprints_model ON fingerprints(model_id);
        CREATE INDEX fingerprints_path ON fingerprints(path)
        """,
    )


MIGRATIONS: tuple[tuple[str, Migration], ...] = (
    ("0001_records_models_artifacts", m0001_records_models_artifacts),
    ("0002_audits_per_tensor", m0002_audits_per_tensor),
    ("0003_evidence_tokenizers", m0003_evidence_tokenizers),
    ("0004_chat_transcripts", m0004_chat_transcripts),
    ("0005_fingerprints", m0005_fingerprints),
)
LATEST = MIGRATIONS[-1][0]


def applied(conn: Conn) -> list[str]:
    """Names of the migrations recorded in the file (empty for a new file)."""
    tables = {row[0] for row in conn.execute(dialect_of(conn).list_tables)}
    if "schema_migrations" not in tables:
        return []
    return [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]


def _refuse_unknown(done: list[str], path: Path | str) -> None:
    """A migration we do not know means a newer companion wrote this file."""
    known = {name for name, _ in MIGRATIONS}
    unknown = [n for n in done if n not in known]
    if unknown:
        raise StoreError(
            f"The audit store {path} was written by a newer companion "
            f"(unknown migrations: {', '.join(unknown)}).",
            hint="upgrade companion, or point COMPANION_STORE_PATH (or COMPANION_STORE_URL) "
            "at another store.",
        )


def migrate(conn: Conn, path: Path | str) -> list[str]:
    """Apply the missing migrations in order, in one transaction; return the names applied."""
    done = applied(conn)
    _refuse_unknown(done, path)
    if len(done) == len(MIGRATIONS):
        return []
    # Serialises concurrent first opens: the second waits, then sees the work done (SQLite:
    # BEGIN IMMEDIATE; PostgreSQL: an advisory lock held until the transaction ends).
    dialect = dialect_of(conn)
    conn.execute(dialect.begin_write)
    try:
        if dialect.migration_lock is not None:
            conn.execute(dialect.migration_lock, (APPLICATION_ID,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name TEXT PRIMARY KEY, applied TEXT NOT NULL)"
        )
        done = applied(conn)
        _refuse_unknown(done, path)
        ran = []
        for name, func in MIGRATIONS:
            if name in done:
                continue
            func(conn)
            conn.execute(
                "INSERT INTO schema_migrations(name, applied) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
            ran.append(name)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return ran
