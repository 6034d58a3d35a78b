"""Migrations: an empty database migrates to exactly this schema, once, in order."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from companion.errors import StoreError
from companion.store.db import APPLICATION_ID, connect
from companion.store.migrations import MIGRATIONS, migrate

EXPECTED_SCHEMA = {
    ("table", "schema_migrations"): "CREATE TABLE schema_migrations "
    "(name TEXT PRIMARY KEY, applied TEXT NOT NULL)",
    ("table", "records"): "CREATE TABLE records ( id INTEGER PRIMARY KEY, uid TEXT NOT NULL "
    "UNIQUE, kind TEXT NOT NULL, created TEXT NOT NULL, verdict TEXT, reasons TEXT NOT NULL "
    "DEFAULT '[]', args TEXT NOT NULL, result TEXT NOT NULL, manifest TEXT, tool_version TEXT )",
    ("index", "records_created"): "CREATE INDEX records_created ON records(created)",
    ("index", "records_kind"): "CREATE INDEX records_kind ON records(kind, created)",
    ("index", "records_verdict"): "CREATE INDEX records_verdict ON records(verdict, created)",
    ("table", "models"): "CREATE TABLE models ( id INTEGER PRIMARY KEY, content_sha256 TEXT "
    "NOT NULL UNIQUE, name TEXT NOT NULL, path TEXT NOT NULL, arch_spec TEXT, first_seen TEXT "
    "NOT NULL )",
    ("index", "models_name"): "CREATE INDEX models_name ON models(name)",
    ("index", "models_path"): "CREATE INDEX models_path ON models(path)",
    ("table", "artifacts"): "CREATE TABLE artifacts ( id INTEGER PRIMARY KEY, path TEXT NOT "
    "NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, UNIQUE (path, sha256) )",
    ("index", "artifacts_sha256"): "CREATE INDEX artifacts_sha256 ON artifacts(sha256)",
    ("table", "record_models"): "CREATE TABLE record_models ( record_id INTEGER NOT NULL "
    "REFERENCES records(id) ON DELETE CASCADE, model_id INTEGER NOT NULL REFERENCES models(id), "
    "side TEXT NOT NULL, PRIMARY KEY (record_id, model_id, side) ) WITHOUT ROWID",
    ("index", "record_models_model"): "CREATE INDEX record_models_model ON record_models(model_id)",
    ("table", "record_artifacts"): "CREATE TABLE record_artifacts ( record_id INTEGER NOT NULL "
    "REFERENCES records(id) ON DELETE CASCADE, artifact_id INTEGER NOT NULL REFERENCES "
    "artifacts(id), model_id INTEGER REFERENCES models(id), PRIMARY KEY (record_id, "
    "artifact_id) ) WITHOUT ROWID",
    ("index", "record_artifacts_artifact"): "CREATE INDEX record_artifacts_artifact ON "
    "record_artifacts(artifact_id)",
    ("table", "audits"): "CREATE TABLE audits ( record_id INTEGER PRIMARY KEY REFERENCES "
    "records(id) ON DELETE CASCADE, model_a INTEGER REFERENCES models(id), model_b INTEGER "
    "REFERENCES models(id), verdict TEXT, n_tensors INTEGER NOT NULL )",
    ("index", "audits_pair"): "CREATE INDEX audits_pair ON audits(model_a, model_b)",
    ("table", "per_tensor"): "CREATE TABLE per_tensor ( id INTEGER PRIMARY KEY, record_id "
    "INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE, name_a TEXT, name_b TEXT, role "
    "TEXT, layer INTEGER, cosine REAL, pearson REAL, spearman REAL, rel_l2 REAL, z REAL, p REAL, "
    "extra TEXT NOT NULL DEFAULT '{}' )",
    ("index", "per_tensor_record"): "CREATE INDEX per_tensor_record ON per_tensor(record_id)",
    ("index", "per_tensor_role_pearson"): "CREATE INDEX per_tensor_role_pearson ON "
    "per_tensor(role, pearson, record_id)",
    ("index", "per_tensor_role_cosine"): "CREATE INDEX per_tensor_role_cosine ON "
    "per_tensor(role, cosine, record_id)",
    ("table", "evidence_summaries"): "CREATE TABLE evidence_summaries ( record_id INTEGER "
    "PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE, model_id INTEGER REFERENCES "
    "models(id), verdict TEXT, headline TEXT NOT NULL DEFAULT '{}' )",
    ("table", "tokenizer_comparisons"): "CREATE TABLE tokenizer_comparisons ( record_id "
    "INTEGER PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE, model_a INTEGER REFERENCES "
    "models(id), model_b INTEGER REFERENCES models(id), verdict TEXT, headline TEXT NOT NULL "
    "DEFAULT '{}' )",
    ("table", "chat_transcripts"): "CREATE TABLE chat_transcripts ( id TEXT PRIMARY KEY, "
    "messages TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL )",
    ("index", "chat_transcripts_updated"): "CREATE INDEX chat_transcripts_updated ON "
    "chat_transcripts(updated)",
}
# SQLite's own indexes for UNIQUE / PRIMARY KEY constraints (no SQL text).
AUTO_INDEXES = {
    "sqlite_autoindex_artifacts_1",
    "sqlite_autoindex_chat_transcripts_1",
    "sqlite_autoindex_models_1",
    "sqlite_autoindex_records_1",
    "sqlite_autoindex_schema_migrations_1",
}


def _schema(conn: sqlite3.Connection) -> tuple[dict[tuple[str, str], str], set[str]]:
    """Whitespace-normalised schema SQL by (type, name), plus the automatic indexes."""
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    norm = {(t, n): re.sub(r"\s+", " ", s).strip() for t, n, s in rows if s is not None}
    return norm, {n for _, n, s in rows if s is None}


def test_empty_database_migrates_to_exact_schema(tmp_path: Path) -> None:
    conn = connect(tmp_path / "s.sqlite3")
    schema, auto = _schema(conn)
    assert schema == EXPECTED_SCHEMA
    assert auto == AUTO_INDEXES
    names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY rowid")]
    assert names == [name for name, _ in MIGRATIONS]
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_every_open_migrates_and_applies_each_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    # A store written by an older companion: only the first migration applied.
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
    MIGRATIONS[0][1](conn)
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (MIGRATIONS[0][0],))
    conn.execute(
        "INSERT INTO records(uid, kind, created, args, result) VALUES ('x','k','t','{}','{}')"
    )
    conn.close()
    conn = connect(path)
    assert _schema(conn)[0] == EXPECTED_SCHEMA
    rows = conn.execute("SELECT name, applied FROM schema_migrations ORDER BY rowid").fetchall()
    assert [r[0] for r in rows] == [name for name, _ in MIGRATIONS]
    assert rows[0][1] == "then"  # not re-applied
    assert conn.execute("SELECT uid FROM records").fetchall()[0][0] == "x"  # data kept
    assert migrate(conn, path) == []
    conn.close()


def test_store_from_a_newer_companion_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    connect(path).close()
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("INSERT INTO schema_migrations VALUES ('9999_from_the_future', 'later')")
    raw.close()
    with pytest.raises(StoreError, match="newer companion") as err:
        connect(path)
    assert err.value.hint is not None and "upgrade" in err.value.hint
