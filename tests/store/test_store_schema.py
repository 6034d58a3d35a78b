"""Migrations: an empty database migrates to exactly this schema, once, in order."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers.postgres import PostgresServer

from companion.errors import StoreError
from companion.store.db import APPLICATION_ID, connect, open_store
from companion.store.migrations import MIGRATIONS, migrate
from companion.store.postgres import PostgresBackend

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
    ("table", "fingerprints"): "CREATE TABLE fingerprints ( id INTEGER PRIMARY KEY, record_id "
    "INTEGER REFERENCES records(id) ON DELETE CASCADE, model_id INTEGER REFERENCES models(id), "
    "content_sha256 TEXT NOT NULL, scheme TEXT NOT NULL, path TEXT NOT NULL, status TEXT NOT "
    "NULL, error TEXT, hidden INTEGER, layers INTEGER, nbytes INTEGER, sketch TEXT, data TEXT "
    "NOT NULL DEFAULT '{}', created TEXT NOT NULL, UNIQUE (content_sha256, scheme) )",
    ("index", "fingerprints_status"): "CREATE INDEX fingerprints_status ON "
    "fingerprints(status, scheme)",
    ("index", "fingerprints_model"): "CREATE INDEX fingerprints_model ON fingerprints(model_id)",
    ("index", "fingerprints_path"): "CREATE INDEX fingerprints_path ON fingerprints(path)",
}
# SQLite's own indexes for UNIQUE / PRIMARY KEY constraints (no SQL text).
AUTO_INDEXES = {
    "sqlite_autoindex_artifacts_1",
    "sqlite_autoindex_chat_transcripts_1",
    "sqlite_autoindex_fingerprints_1",
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


# The same migrations on PostgreSQL: SQLite's DDL with the dialect's types (store/dialect.py).
T = 'text COLLATE "C"'
EXPECTED_PG_COLUMNS = {
    "schema_migrations": f"name {T} NOT NULL, applied {T} NOT NULL",
    "records": f"id bigint NOT NULL IDENTITY BY DEFAULT, uid {T} NOT NULL, kind {T} NOT NULL, "
    f"created {T} NOT NULL, verdict {T}, reasons {T} NOT NULL DEFAULT '[]'::text, args {T} NOT "
    f"NULL, result {T} NOT NULL, manifest {T}, tool_version {T}",
    "models": f"id bigint NOT NULL IDENTITY BY DEFAULT, content_sha256 {T} NOT NULL, name {T} "
    f"NOT NULL, path {T} NOT NULL, arch_spec {T}, first_seen {T} NOT NULL",
    "artifacts": f"id bigint NOT NULL IDENTITY BY DEFAULT, path {T} NOT NULL, sha256 {T} NOT "
    "NULL, size bigint NOT NULL",
    "record_models": f"record_id bigint NOT NULL, model_id bigint NOT NULL, side {T} NOT NULL",
    "record_artifacts": "record_id bigint NOT NULL, artifact_id bigint NOT NULL, model_id bigint",
    "audits": f"record_id bigint NOT NULL, model_a bigint, model_b bigint, verdict {T}, "
    "n_tensors bigint NOT NULL",
    "per_tensor": f"id bigint NOT NULL IDENTITY BY DEFAULT, record_id bigint NOT NULL, name_a "
    f"{T}, name_b {T}, role {T}, layer bigint, cosine double precision, pearson double "
    "precision, spearman double precision, rel_l2 double precision, z double precision, p "
    f"double precision, extra {T} NOT NULL DEFAULT '{{}}'::text",
    "evidence_summaries": f"record_id bigint NOT NULL, model_id bigint, verdict {T}, headline "
    f"{T} NOT NULL DEFAULT '{{}}'::text",
    "tokenizer_comparisons": f"record_id bigint NOT NULL, model_a bigint, model_b bigint, "
    f"verdict {T}, headline {T} NOT NULL DEFAULT '{{}}'::text",
    "chat_transcripts": f"id {T} NOT NULL, messages {T} NOT NULL, created {T} NOT NULL, "
    f"updated {T} NOT NULL",
    "fingerprints": f"id bigint NOT NULL IDENTITY BY DEFAULT, record_id bigint, model_id bigint, "
    f"content_sha256 {T} NOT NULL, scheme {T} NOT NULL, path {T} NOT NULL, status {T} NOT NULL, "
    f"error {T}, hidden bigint, layers bigint, nbytes bigint, sketch {T}, data {T} NOT NULL "
    f"DEFAULT '{{}}'::text, created {T} NOT NULL",
}
CASCADE = "REFERENCES records(id) ON DELETE CASCADE"
EXPECTED_PG_CONSTRAINTS = {
    ("schema_migrations", "PRIMARY KEY (name)"),
    ("records", "PRIMARY KEY (id)"),
    ("records", "UNIQUE (uid)"),
    ("models", "PRIMARY KEY (id)"),
    ("models", "UNIQUE (content_sha256)"),
    ("artifacts", "PRIMARY KEY (id)"),
    ("artifacts", "UNIQUE (path, sha256)"),
    ("record_models", "PRIMARY KEY (record_id, model_id, side)"),
    ("record_models", f"FOREIGN KEY (record_id) {CASCADE}"),
    ("record_models", "FOREIGN KEY (model_id) REFERENCES models(id)"),
    ("record_artifacts", "PRIMARY KEY (record_id, artifact_id)"),
    ("record_artifacts", f"FOREIGN KEY (record_id) {CASCADE}"),
    ("record_artifacts", "FOREIGN KEY (artifact_id) REFERENCES artifacts(id)"),
    ("record_artifacts", "FOREIGN KEY (model_id) REFERENCES models(id)"),
    ("audits", "PRIMARY KEY (record_id)"),
    ("audits", f"FOREIGN KEY (record_id) {CASCADE}"),
    ("audits", "FOREIGN KEY (model_a) REFERENCES models(id)"),
    ("audits", "FOREIGN KEY (model_b) REFERENCES models(id)"),
    ("per_tensor", "PRIMARY KEY (id)"),
    ("per_tensor", f"FOREIGN KEY (record_id) {CASCADE}"),
    ("evidence_summaries", "PRIMARY KEY (record_id)"),
    ("evidence_summaries", f"FOREIGN KEY (record_id) {CASCADE}"),
    ("evidence_summaries", "FOREIGN KEY (model_id) REFERENCES models(id)"),
    ("tokenizer_comparisons", "PRIMARY KEY (record_id)"),
    ("tokenizer_comparisons", f"FOREIGN KEY (record_id) {CASCADE}"),
    ("tokenizer_comparisons", "FOREIGN KEY (model_a) REFERENCES models(id)"),
    ("tokenizer_comparisons", "FOREIGN KEY (model_b) REFERENCES models(id)"),
    ("chat_transcripts", "PRIMARY KEY (id)"),
    ("fingerprints", "PRIMARY KEY (id)"),
    ("fingerprints", "UNIQUE (content_sha256, scheme)"),
    ("fingerprints", f"FOREIGN KEY (record_id) {CASCADE}"),
    ("fingerprints", "FOREIGN KEY (model_id) REFERENCES models(id)"),
}
# The explicit indexes: the same names and columns as SQLite's CREATE INDEX statements.
EXPECTED_PG_INDEXES = {
    name: re.sub(r"ON (\w+)\((.*)\)$", r"ON public.\1 USING btree (\2)", sql)
    for (kind, name), sql in EXPECTED_SCHEMA.items()
    if kind == "index"
}

PG_COLUMNS = """
SELECT table_name, string_agg(column_name || ' ' || data_type
    || CASE WHEN collation_name IS NOT NULL THEN ' COLLATE "' || collation_name || '"' ELSE '' END
    || CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END
    || CASE WHEN is_identity = 'YES' THEN ' IDENTITY ' || identity_generation ELSE '' END
    || COALESCE(' DEFAULT ' || column_default, ''), ', ' ORDER BY ordinal_position)
FROM information_schema.columns WHERE table_schema = current_schema() GROUP BY table_name
"""


def _pg_schema(conn: Any) -> tuple[dict[str, str], set[tuple[str, str]], dict[str, str]]:
    """Columns per table, constraints, and the indexes that no constraint made."""
    columns = {str(t): str(c) for t, c in conn.execute(PG_COLUMNS).fetchall()}
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid), conname FROM pg_constraint "
        "WHERE connamespace = current_schema()::regnamespace"
    ).fetchall()
    made = {str(r[2]) for r in constraints}
    indexes = {
        str(n): str(d)
        for n, d in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        ).fetchall()
        if n not in made
    }
    return columns, {(str(r[0]), str(r[1])) for r in constraints}, indexes


def test_empty_postgres_database_migrates_to_exact_schema(pg_server: PostgresServer) -> None:
    url = pg_server.new_database()
    with open_store(url) as conn:
        columns, constraints, indexes = _pg_schema(conn)
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert columns == EXPECTED_PG_COLUMNS
    assert constraints == EXPECTED_PG_CONSTRAINTS
    assert indexes == EXPECTED_PG_INDEXES
    assert names == [name for name, _ in MIGRATIONS]
    assert set(EXPECTED_PG_COLUMNS) == {n for t, n in EXPECTED_SCHEMA if t == "table"}


def test_postgres_older_store_is_migrated_once_and_newer_is_refused(
    pg_server: PostgresServer,
) -> None:
    url = pg_server.new_database()
    raw = PostgresBackend(url).open_raw()
    raw.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
    MIGRATIONS[0][1](raw)
    raw.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (MIGRATIONS[0][0],))
    raw.execute(
        "INSERT INTO records(uid, kind, created, args, result) VALUES ('x','k','t','{}','{}')"
    )
    with open_store(url) as conn:
        assert _pg_schema(conn)[0] == EXPECTED_PG_COLUMNS
        rows = conn.execute("SELECT name, applied FROM schema_migrations ORDER BY name").fetchall()
        assert [r[0] for r in rows] == [name for name, _ in MIGRATIONS]
        assert rows[0][1] == "then"
        assert conn.execute("SELECT uid FROM records").fetchall()[0][0] == "x"
        assert migrate(conn, url) == []
    raw.execute("INSERT INTO schema_migrations VALUES ('9999_from_the_future', 'later')")
    raw.close()
    with pytest.raises(StoreError, match="newer companion") as err, open_store(url):
        pass
    assert err.value.hint is not None and "upgrade" in err.value.hint
