"""A separate process that records audits into a store, for concurrency and crash tests.

    python -m helpers.store_writer WORKDIR COUNT CHUNKS [--go FILE] [--hang-last]
                                   [--pause-at I --resume FILE]

It records COUNT test audits through the same path as the CLI (run_tool with the store's
recorder; the store is wherever COMPANION_HOME or COMPANION_STORE_URL points) and prints
`committed <id>` after each commit. With --go it prints `ready` and waits for FILE to exist
before writing. With --hang-last, the last audit stops half-way through its per-tensor rows
(inside the open transaction), prints `MIDWRITE` and sleeps, so a test can kill -9 it there.
With --pause-at I, audit I stops the same way once, prints `MIDWRITE` and goes on when the
--resume FILE exists (a test restarts the database server meanwhile).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import companion.store.record as record
import helpers.store_tools  # noqa: F401  (registers the test tools)
from companion.settings import Settings
from companion.store import recorder_for
from companion.toolbox import run_tool
from companion.tools import ToolContext
from helpers.store_tools import make_pair


def _hanging(real: Any) -> Any:
    """Wrap tensor_rows so that it stalls after half of the rows."""

    def rows(record_id: int, items: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
        items = list(items)
        for i, row in enumerate(real(record_id, items)):
            if i == len(items) // 2:
                print("MIDWRITE", flush=True)
                time.sleep(120)
            yield row

    return rows


def _pausing(real: Any, resume: Path) -> Any:
    """Wrap tensor_rows so that it waits for `resume` once, half-way through the rows."""
    paused = [False]

    def rows(record_id: int, items: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
        items = list(items)
        for i, row in enumerate(real(record_id, items)):
            if i == len(items) // 2 and not paused[0]:
                paused[0] = True
                print("MIDWRITE", flush=True)
                deadline = time.monotonic() + 120
                while not resume.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
            yield row

    return rows


def write_audits(url: str, workdir: Path, count: int, chunks: int, start: Any, out: Any) -> None:
    """A multiprocessing worker: wait at `start` (a barrier), record `count` audits into the
    store at `url`, and put the record ids on the `out` queue (or the error text)."""
    try:
        a, b = make_pair(workdir, size=max(4096, chunks * 8))
        settings = Settings(home=workdir / "home", store_url=url)
        ctx = ToolContext(settings=settings, roots=[workdir], recorder=recorder_for(settings))
        start.wait(timeout=60)  # every process opens the (still empty) store at once
        ids = []
        for _ in range(count):
            args = {"a": str(a), "b": str(b), "chunks": chunks}
            ids.append(run_tool("audit.test_compare", args, ctx).record_id)  # type: ignore[attr-defined]
        out.put(ids)
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def main() -> int:
    """Record COUNT audits, printing each committed id."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("chunks", type=int)
    parser.add_argument("--go", type=Path)
    parser.add_argument("--hang-last", action="store_true")
    parser.add_argument("--pause-at", type=int, default=-1)
    parser.add_argument("--resume", type=Path)
    ns = parser.parse_args()
    a, b = make_pair(ns.workdir, size=max(4096, ns.chunks * 8))
    settings = Settings()
    ctx = ToolContext(settings=settings, roots=[ns.workdir], recorder=recorder_for(settings))
    if ns.go is not None:
        print("ready", flush=True)
        deadline = time.monotonic() + 60
        while not ns.go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    for i in range(ns.count):
        if ns.hang_last and i == ns.count - 1:
            record.tensor_rows = _hanging(record.tensor_rows)
        if i == ns.pause_at:
            record.tensor_rows = _pausing(record.tensor_rows, ns.resume)
        args = {"a": str(a), "b": str(b), "chunks": ns.chunks}
        result = run_tool("audit.test_compare", args, ctx)
        print("committed", result.record_id, flush=True)  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
