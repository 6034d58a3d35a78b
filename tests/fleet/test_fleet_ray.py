"""The fleet on a real local Ray (2 CPUs): a worker killed mid-task, a failing checkpoint, resume.

The killed task blocks on a FIFO standing in for its sharded checkpoint's index: the test
opens the FIFO's write end (so it knows the worker is inside the read), swaps the real index
in under the same name, and SIGKILLs that worker. Ray retries the task on a new worker, which reads
the real file; the store must hold that checkpoint exactly once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from companion.audit import synth  # noqa: E402
from companion.fleet.schemas import FleetResult  # noqa: E402
from companion.settings import Settings  # noqa: E402
from companion.toolbox import context  # noqa: E402
from companion.tools import ToolContext  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray instance with 2 CPUs for the module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _models(root: Path, n: int, shards: int = 1) -> list[Path]:
    """n small independent checkpoints."""
    spec = synth.Spec(layers=2)
    return [synth.save(root / f"m{i}", synth.base(spec, seed=i), spec, shards) for i in range(n)]


def _ctx(tmp_path: Path) -> ToolContext:
    return context(Settings(home=tmp_path / "home"), [tmp_path])


def _rows(ctx: ToolContext) -> list[tuple[str, str, str | None]]:
    conn = sqlite3.connect(ctx.settings.resolved_store_path())
    return conn.execute("SELECT path, status, error FROM fingerprints ORDER BY path").fetchall()


def _running_task() -> int | None:
    """The pid of a Ray worker running a fingerprint task now (Ray titles it after the task)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if fh.read(64).startswith(b"ray::companion-fingerprint"):
                    return int(pid)
        except OSError:
            continue
    return None


def test_a_killed_worker_is_retried_and_nothing_is_duplicated(tmp_path: Path) -> None:
    spec = synth.Spec(layers=8, hidden=256, intermediate=1024, heads=4)
    root = tmp_path / "ckpts"
    paths = [synth.save(root / f"m{i}", synth.base(spec, seed=i), spec, 2) for i in range(4)]
    killed: list[int] = []
    done = threading.Event()

    def kill_one_running_task() -> None:
        for _ in range(12_000):  # bounded: at most about two minutes of polling
            if done.is_set():
                return
            if (pid := _running_task()) is not None:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_running_task, daemon=True)
    killer.start()
    ctx = _ctx(tmp_path)
    result = ctx.run("fleet.fingerprint", {"source": str(root), "max_retries": 3})
    done.set()
    killer.join(timeout=60)
    assert killed, "no fingerprint task was seen running, so none was killed"
    assert isinstance(result, FleetResult)
    assert (result.ok, result.failed, result.skipped) == (4, 0, 0), result.to_markdown()
    rows = _rows(ctx)
    assert sorted(r[0] for r in rows) == sorted(str(p) for p in paths)  # each exactly once
    assert all(r[1] == "ok" for r in rows)


def test_a_failing_checkpoint_is_recorded_and_the_rest_go_on_then_resume_skips(
    tmp_path: Path,
) -> None:
    paths = _models(tmp_path / "ckpts", 3)
    bad = tmp_path / "ckpts" / "broken"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"\xff" * 64)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in [*paths, bad]) + "\n", encoding="utf-8")
    ctx = _ctx(tmp_path)
    first = ctx.run("fleet.fingerprint", {"source": str(listing)})
    assert isinstance(first, FleetResult)
    assert (first.ok, first.failed) == (3, 1), first.to_markdown()
    failed = [r for r in _rows(ctx) if r[1] == "failed"]
    assert [r[0] for r in failed] == [str(bad)] and "header length" in (failed[0][2] or "")
    again = ctx.run("fleet.fingerprint", {"source": str(listing)})
    assert isinstance(again, FleetResult)
    assert (again.ok, again.failed, again.skipped) == (0, 1, 3), again.to_markdown()
    assert len(_rows(ctx)) == 4
