"""Drive the real `companion mcp` server through the mcp SDK's stdio client (never a mock)."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from companion.audit import synth


def server_params(*args: str, home: Path, cwd: Path | None = None) -> StdioServerParameters:
    """`python -m companion mcp ARGS` with its own COMPANION_HOME (hence its own store)."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "companion", "mcp", *args],
        env={"COMPANION_HOME": str(home), "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        cwd=str(cwd) if cwd else None,
    )


@asynccontextmanager
async def session(
    *args: str, home: Path, cwd: Path | None = None, roots: list[Path] | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized client session; `roots` makes the client answer roots/list."""

    async def list_roots(ctx: Any) -> types.ListRootsResult:
        return types.ListRootsResult(
            roots=[types.Root(uri=p.as_uri(), name=p.name) for p in roots or []]
        )

    log = (home / "server-stderr.log").open("a")
    try:
        async with (
            stdio_client(server_params(*args, home=home, cwd=cwd), errlog=log) as (r, w),
            ClientSession(r, w, list_roots_callback=list_roots if roots else None) as s,
        ):
            await s.initialize()
            yield s
    finally:
        log.close()


def text(result: types.CallToolResult) -> str:
    """All text blocks of a tool result."""
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def store_records(home: Path) -> list[tuple[str, str]]:
    """(kind, uid) of every record in the store under this COMPANION_HOME."""
    path = home / "store.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return [(k, u) for k, u in conn.execute("SELECT kind, uid FROM records ORDER BY id")]


def big_pair(root: Path) -> tuple[Path, Path]:
    """Two checkpoints (~40 MB each) whose audit streams for a while, B fine-tuned from A."""
    spec = synth.Spec(hidden=256, layers=12, intermediate=1024, vocab=2048)
    w = synth.base(spec, seed=0)
    return synth.save(root / "big_a", w, spec), synth.save(root / "big_b", synth.finetune(w), spec)


def child_pids() -> list[int]:
    """Running processes whose parent is this test process (the spawned servers; an ended
    one not yet reaped is not running). Tests take the difference with the children that ran
    before them: earlier tests in the same worker process may leave theirs."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of a process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def structured(result: types.CallToolResult) -> dict[str, Any]:
    """The structured content of a result (a dict, as every tool returns an object)."""
    data = result.structured_content
    assert isinstance(data, dict), json.dumps(data)[:200]
    return data
