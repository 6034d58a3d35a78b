"""Crash safety (kill -9 mid-write) and corrupt or foreign store files."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.store_tools import make_pair

from companion.errors import StoreError
from companion.settings import Settings
from companion.store.check import check_store
from companion.store.db import open_store
from companion.toolbox import run_tool
from companion.tools import ToolContext

REPO = Path(__file__).resolve().parents[2]
# These tests are about the SQLite file (locks, WAL, damaged pages, foreign files).
pytestmark = pytest.mark.sqlite_only


def writer_env(home: Path) -> dict[str, str]:
    return {**os.environ, "COMPANION_HOME": str(home), "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 60) -> list[str]:
    """Lines printed by a writer up to (not including) `marker`."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.strip() == marker:
            return lines
        lines.append(line.strip())
    raise AssertionError(f"writer never printed {marker!r}; got {lines}")


def test_kill_9_mid_write_keeps_committed_runs_and_hides_the_partial_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helpers.store_writer",
            str(tmp_path / "w"),
            "4",
            "3000",
            "--hang-last",
        ],
        env=writer_env(home),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        committed = [line.split()[1] for line in read_until(proc, "MIDWRITE")]
        # The writer is inside its transaction: it holds the write lock...
        probe = sqlite3.connect(home / "store.sqlite3", timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            probe.execute("BEGIN IMMEDIATE")
        # ...and readers do not see its half-written audit.
        assert probe.execute("SELECT count(*) FROM records").fetchone()[0] == 3
        probe.close()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(committed) == 3
    store = home / "store.sqlite3"
    # The killed transaction left its pages in the WAL; they must not be visible.
    assert (home / "store.sqlite3-wal").stat().st_size > 0
    with open_store(store) as conn:
        uids = [r[0] for r in conn.execute("SELECT uid FROM records ORDER BY id")]
        assert uids == committed
        rows = conn.execute(
            "SELECT a.n_tensors, (SELECT count(*) FROM per_tensor t "
            "WHERE t.record_id = a.record_id) FROM audits a"
        ).fetchall()
        assert [tuple(r) for r in rows] == [(3000, 3000)] * 3
        orphans = conn.execute(
            "SELECT count(*) FROM per_tensor WHERE record_id NOT IN (SELECT id FROM records)"
        ).fetchone()[0]
        assert orphans == 0
    assert check_store(store).status == "ok"
    # And the store keeps working: a new run records and the old ones still verify.
    settings = Settings(home=home)
    from companion.store import recorder_for

    ctx = ToolContext(settings=settings, roots=[tmp_path], recorder=recorder_for(settings))
    a, b = make_pair(tmp_path / "again")
    assert run_tool("audit.test_compare", {"a": str(a), "b": str(b)}, ctx).record_id  # type: ignore[attr-defined]
    assert run_tool("store.verify", {"target": committed[0]}, ctx).status == "reproduced"  # type: ignore[attr-defined]


def _ctx(home: Path, tmp_path: Path) -> ToolContext:
    from companion.store import recorder_for

    settings = Settings(home=home)
    return ToolContext(settings=settings, roots=[tmp_path], recorder=recorder_for(settings))


def _assert_refused(ctx: ToolContext, store: Path, tmp_path: Path, match: str) -> None:
    """Recording and querying both fail with a StoreError naming a fix; the file is untouched."""
    before = store.read_bytes()
    a, b = make_pair(tmp_path / "ckpt")
    for name, args in (
        ("audit.test_compare", {"a": str(a), "b": str(b)}),
        ("audit.query", {}),
    ):
        with pytest.raises(StoreError, match=match) as err:
            run_tool(name, args, ctx)
        assert err.value.hint is not None
        assert "companion store check" in err.value.hint and "mv " in err.value.hint
    assert store.read_bytes() == before  # never recreated, never "repaired"


def test_foreign_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    store = home / "store.sqlite3"
    store.write_text("name,score\nalice,1\n")
    _assert_refused(_ctx(home, tmp_path), store, tmp_path, "not an SQLite database")
    assert check_store(store).status == "foreign"


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    store = home / "store.sqlite3"
    conn = sqlite3.connect(store)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('alice')")
    conn.commit()
    conn.close()
    _assert_refused(_ctx(home, tmp_path), store, tmp_path, "another application")
    result = check_store(store)
    assert result.status == "foreign" and "contacts" in result.problems[0]


def _filled_store(home: Path, tmp_path: Path) -> Path:
    ctx = _ctx(home, tmp_path)
    a, b = make_pair(tmp_path / "fill", size=40_000)
    for _ in range(3):
        run_tool("audit.test_compare", {"a": str(a), "b": str(b), "chunks": 2000}, ctx)
    store = home / "store.sqlite3"
    conn = sqlite3.connect(store)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return store


def test_corrupt_pages_give_a_clear_error_and_check_says_how_to_recover(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = _filled_store(home, tmp_path)
    data = bytearray(store.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[2 * page :] = bytes((i * 37) % 256 for i in range(len(data) - 2 * page))
    store.write_bytes(bytes(data))
    _assert_refused(_ctx(home, tmp_path), store, tmp_path, "damaged")
    result = check_store(store)
    assert result.status == "corrupt" and result.problems
    assert ".recover" in result.advice and "mv " in result.advice
    assert store.read_bytes() == bytes(data)


def test_corrupt_schema_page_is_detected_on_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = _filled_store(home, tmp_path)
    data = bytearray(store.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    store.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"damaged|not a database") as err, open_store(store):
        pass
    assert err.value.hint is not None and "companion store check" in err.value.hint
    assert store.read_bytes() == bytes(data)


def test_cli_reports_a_foreign_store_and_store_check_explains(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "store.sqlite3").write_text("not a database")
    env = writer_env(home)
    query = subprocess.run(
        [sys.executable, "-m", "companion", "query"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert query.returncode == 2
    assert "not an SQLite database" in query.stderr and "companion store check" in query.stderr
    check = subprocess.run(
        [sys.executable, "-m", "companion", "store", "check", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert '"status": "foreign"' in check.stdout


def _open_once(path: str, start: Any, out: Any) -> None:
    """A process: open the store at `path` together with the others, then write once."""
    from companion.store.db import connect

    start.wait(timeout=60)
    try:
        conn = connect(Path(path))
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
        conn.close()
        out.put("ok")
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_first_opens_of_a_fresh_store_all_succeed(tmp_path: Path) -> None:
    """Twelve processes opening one new store file at once (converting it to WAL races, and
    SQLite reports that race at once, without the busy timeout) all get a working store."""
    ctx = multiprocessing.get_context("fork")
    for round_ in range(20):
        path = tmp_path / f"r{round_}" / "store.sqlite3"
        start, out = ctx.Barrier(12), ctx.Queue()
        procs = [ctx.Process(target=_open_once, args=(str(path), start, out)) for _ in range(12)]
        for p in procs:
            p.start()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert results == ["ok"] * 12
