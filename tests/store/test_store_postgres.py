"""The shared PostgreSQL store under stress: many writer processes, a server restart mid-write,
a read-only role, `store migrate-to` from SQLite, and GLOB semantics matching SQLite's."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.postgres import PostgresServer
from helpers.store_tools import make_pair
from helpers.store_writer import write_audits

from companion.errors import StoreError
from companion.settings import Settings
from companion.store import recorder_for, save_conversation
from companion.store.db import open_store
from companion.store.dialect import glob_regex
from companion.store.migrations import MIGRATIONS
from companion.store.postgres import PgConnection
from companion.store.schemas import MigrateResult, QueryResult
from companion.toolbox import context, run_tool
from companion.tools import ToolContext

REPO = Path(__file__).resolve().parents[2]
WRITERS, PER_WRITER, CHUNKS = 4, 5, 50


def _counts(url: str) -> tuple[int, int, int, int]:
    """(records, audits, per_tensor rows, applied migrations) in the store at `url`."""
    with open_store(url) as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("records", "audits", "per_tensor", "schema_migrations")
        )


def test_concurrent_writer_processes_on_a_new_database_lose_nothing(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    url = pg_server.new_database()  # empty: every writer's first open migrates at once
    mp = multiprocessing.get_context("spawn")
    start, out = mp.Barrier(WRITERS), mp.Queue()
    procs = [
        mp.Process(
            target=write_audits,
            args=(url, tmp_path / f"w{i}", PER_WRITER, CHUNKS, start, out),
        )
        for i in range(WRITERS)
    ]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=240) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert all(isinstance(r, list) for r in results), results
    ids = {rid for r in results for rid in r}
    assert len(ids) == WRITERS * PER_WRITER
    n = WRITERS * PER_WRITER
    assert _counts(url) == (n, n, n * CHUNKS, len(MIGRATIONS))
    with open_store(url) as conn:
        stored = {r[0] for r in conn.execute("SELECT uid FROM records")}
        per_record = conn.execute(
            "SELECT DISTINCT (SELECT count(*) FROM per_tensor t WHERE t.record_id = a.record_id), "
            "a.n_tensors FROM audits a"
        ).fetchall()
    assert stored == ids
    assert [tuple(r) for r in per_record] == [(CHUNKS, CHUNKS)]


def test_server_restart_mid_write_is_retried_and_nothing_is_lost(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    url = pg_server.new_database()
    resume = tmp_path / "resume"
    env = {
        "COMPANION_HOME": str(tmp_path / "home"),
        "COMPANION_STORE_URL": url,
        "PYTHONPATH": f"{REPO}:{REPO / 'tests'}",
        "PATH": "/usr/bin:/bin",
    }
    argv = ["6", "400", "--pause-at", "2", "--resume", str(resume)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "helpers.store_writer", str(tmp_path / "w"), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        before = []
        for _ in range(3):  # two commits, then the third audit stops inside its transaction
            line = proc.stdout.readline().strip()
            if line == "MIDWRITE":
                break
            before.append(line.split()[1])
        assert len(before) == 2, before
        pg_server.restart()  # cuts the writer's connection in the middle of its transaction
        resume.touch()
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    ids = before + [line.split()[1] for line in out.splitlines()]
    assert len(set(ids)) == 6
    assert _counts(url) == (6, 6, 6 * 400, len(MIGRATIONS))
    with open_store(url) as conn:
        assert {r[0] for r in conn.execute("SELECT uid FROM records")} == set(ids)


@pytest.fixture
def reader_settings(pg_server: PostgresServer, tmp_path: Path) -> tuple[Settings, Settings]:
    """(owner, read-only role) settings on one database that holds one recorded audit."""
    url = pg_server.new_database()
    owner = Settings(home=tmp_path / "home", store_url=url)
    a, b = make_pair(tmp_path / "ckpt")
    run_tool("audit.test_compare", {"a": str(a), "b": str(b)}, context(owner, [tmp_path]))
    database = url.split("/")[3].split("?")[0]
    pg_server.sql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reader') THEN "
        "CREATE ROLE reader LOGIN; END IF; END $$"
    )
    pg_server.sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader", database)
    reader_url = url.replace("postgres@", "reader@", 1)
    return owner, Settings(home=tmp_path / "home", store_url=reader_url)


def test_read_only_role_reads_and_a_write_names_the_next_step(
    reader_settings: tuple[Settings, Settings], tmp_path: Path
) -> None:
    _, reader = reader_settings
    ctx = context(reader, [tmp_path])
    listed = run_tool("audit.query", {}, ctx)
    assert isinstance(listed, QueryResult) and len(listed.records) == 1
    assert "reader@" in listed.store and "postgres@" not in listed.store
    assert run_tool("store.check", {}, ctx).status == "ok"  # type: ignore[attr-defined]
    a, b = make_pair(tmp_path / "other", seed=5)
    with pytest.raises(StoreError, match="role reader may not write") as err:
        run_tool("audit.test_compare", {"a": str(a), "b": str(b)}, ctx)
    assert err.value.hint is not None
    assert "--no-store" in err.value.hint and "GRANT" in err.value.hint
    with pytest.raises(StoreError, match="may not write"):
        save_conversation(reader, "c1", [{"role": "user", "content": "hi"}])
    off = reader.model_copy(update={"store_enabled": False})
    quiet = ToolContext(settings=off, roots=[tmp_path], recorder=recorder_for(off))
    assert run_tool("audit.test_compare", {"a": str(a), "b": str(b)}, quiet).record_id is None  # type: ignore[attr-defined]


def _filled_sqlite(tmp_path: Path) -> tuple[Settings, list[str]]:
    """An SQLite store with audits, an evidence summary, a tokenizer run and a chat."""
    settings = Settings(home=tmp_path / "home")
    ctx = context(settings, [tmp_path])
    a, b = make_pair(tmp_path / "ckpt")
    log, va, vb = tmp_path / "train.log", tmp_path / "va.txt", tmp_path / "vb.txt"
    log.write_text("12.2\n3.0\n")
    va.write_text("x y z")
    vb.write_text("x y w")
    runs = [
        ("audit.test_compare", {"a": str(a), "b": str(b), "chunks": 20}),
        ("audit.test_compare", {"a": str(b), "b": str(a), "chunks": 10}),
        ("evidence.test_summary", {"path": str(log)}),
        ("tokenizer.test_compare", {"a": str(va), "b": str(vb)}),
    ]
    ids = [str(run_tool(name, args, ctx).record_id) for name, args in runs]  # type: ignore[attr-defined]
    save_conversation(settings, "c1", [{"role": "user", "content": "derived?"}])
    return settings, ids


def test_migrate_to_copies_every_table_and_the_copy_answers_the_same(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    sqlite_settings, ids = _filled_sqlite(tmp_path)
    url = pg_server.new_database()
    result = run_tool("store.migrate_to", {"url": url}, context(sqlite_settings, [tmp_path]))
    assert isinstance(result, MigrateResult)
    rows = {t.table: t.rows for t in result.tables}
    assert rows["records"] == 4 and rows["per_tensor"] == 30 and rows["chat_transcripts"] == 1
    conn = sqlite3.connect(sqlite_settings.resolved_store_path())
    for t in result.tables:
        assert conn.execute(f"SELECT count(*) FROM {t.table}").fetchone()[0] == t.rows
    assert "Counts and checksums agree" in result.to_markdown()
    pg = sqlite_settings.model_copy(update={"store_url": url})
    pg_ctx, sq_ctx = context(pg, [tmp_path]), context(sqlite_settings, [tmp_path])
    for args in (
        {},
        {"role": "mlp", "where": "pearson>0.5"},
        {"model": "tuned", "sort": "verdict"},
    ):
        there, here = run_tool("audit.query", args, pg_ctx), run_tool("audit.query", args, sq_ctx)
        assert isinstance(there, QueryResult) and isinstance(here, QueryResult)
        assert there.model_dump(exclude={"store"}) == here.model_dump(exclude={"store"})
    assert run_tool("store.verify", {"target": ids[0]}, pg_ctx).status == "reproduced"  # type: ignore[attr-defined]
    a, b = make_pair(tmp_path / "after", seed=3)
    run_tool("audit.test_compare", {"a": str(a), "b": str(b)}, pg_ctx)  # ids continue after copy
    assert _counts(url)[0] == 5


def test_migrate_to_refuses_a_filled_store_and_a_bad_copy_commits_nothing(
    pg_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_settings, _ = _filled_sqlite(tmp_path)
    url = pg_server.new_database()
    real = PgConnection.copy_rows

    def lossy(self: PgConnection, table: str, cols: Any, rows: Any) -> int:
        kept = list(rows)
        return real(self, table, cols, kept[:-1] if table == "per_tensor" else kept)

    monkeypatch.setattr(PgConnection, "copy_rows", lossy)
    ctx = context(sqlite_settings, [tmp_path])
    with pytest.raises(StoreError, match="per_tensor did not verify") as err:
        run_tool("store.migrate_to", {"url": url}, ctx)
    assert err.value.hint is not None and "store check" in err.value.hint
    assert _counts(url)[:3] == (0, 0, 0)  # rolled back: the target is still empty
    monkeypatch.undo()
    run_tool("store.migrate_to", {"url": url}, ctx)
    env = {"COMPANION_HOME": str(tmp_path / "home"), "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    again = subprocess.run(
        [sys.executable, "-m", "companion", "store", "migrate-to", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2
    assert "already holds data" in again.stderr and "createdb" in again.stderr


def test_unreachable_server_is_a_store_error_naming_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no-server"
    missing.mkdir()
    settings = Settings(
        home=tmp_path / "home", store_url=f"postgresql://u:secret@/x?host={missing}"
    )
    import companion.store.postgres as pg

    pg.RECONNECT_S, saved = 0.0, pg.RECONNECT_S
    try:
        with pytest.raises(StoreError, match="Cannot reach the PostgreSQL") as err:
            run_tool("audit.query", {}, context(settings, [tmp_path]))
    finally:
        pg.RECONNECT_S = saved
    assert "secret" not in err.value.message
    assert err.value.hint is not None and "pg_isready" in err.value.hint


GLOB_CASES = ["*norm*", "model.layers.?.mlp*", "*[0-9]", "*[^a-z]", "[]x]*", "a.b", "*.*", "a\\b*"]
NAMES = ["model.layers.1.mlp.w", "input_layernorm", "a.b", "axb", "x9", "]y", "a\\bc", "ab"]


def test_glob_on_postgres_matches_sqlite_glob(pg_server: PostgresServer) -> None:
    lite = sqlite3.connect(":memory:")
    with open_store(pg_server.new_database()) as conn:
        for pattern in GLOB_CASES:
            for name in NAMES:
                expected = lite.execute("SELECT ? GLOB ?", (name, pattern)).fetchone()[0]
                got = conn.execute("SELECT ? ~ ?", (name, glob_regex(pattern))).fetchone()[0]
                assert bool(got) == bool(expected), (pattern, name)
