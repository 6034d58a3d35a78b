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


def _holder_of(fifo: Path) -> int:
    """The pid of the process that has `fifo` open (the blocked worker)."""
    target = os.stat(fifo)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino) and int(
                    pid
                ) != os.getpid():
                    return int(pid)
        except OSError:
            continue
    raise AssertionError("no worker holds the FIFO")


def test_a_killed_worker_is_retried_and_nothing_is_duplicated(tmp_path: Path) -> None:
    paths = _models(tmp_path / "ckpts", 4, shards=2)
    victim = paths[0] / "model.safetensors.index.json"
    real = victim.with_name("real.bin")
    victim.rename(real)
    os.mkfifo(victim)
    killed: list[int] = []

    def kill_when_reading() -> None:
        with open(victim, "wb"):  # returns once the worker has opened the read end
            pid = _holder_of(victim)  # blocked reading: we have written nothing yet
            os.replace(real, victim)  # the retry will find the real file
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_when_reading, daemon=True)
    killer.start()
    ctx = _ctx(tmp_path)
    result = ctx.run("fleet.fingerprint", {"source": str(tmp_path / "ckpts"), "max_retries": 3})
    killer.join(timeout=60)
    assert killed, "the worker was never killed"
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
