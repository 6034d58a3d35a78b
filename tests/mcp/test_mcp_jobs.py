"""Long jobs through the real MCP server: progress, cancel, concurrency and disconnects."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers.mcp_client import (
    big_pair,
    child_pids,
    cpu_ticks,
    server_params,
    session,
    store_records,
    text,
)

pytestmark = pytest.mark.timeout(300)
FAST = {"permutation_test": False}  # the audit's streaming phase checks cancel on every block


def _settled(pid: int, rounds: int = 200) -> bool:
    """Whether the process stops using CPU (two ticks at most in 0.3 s), within `rounds`."""
    before = cpu_ticks(pid)
    for _ in range(rounds):
        time.sleep(0.3)
        now = cpu_ticks(pid)
        if now - before <= 2:
            return True
        before = now
    return False


async def test_progress_reaches_the_client(workspace: Path, home: Path) -> None:
    """An audit reports rising progress with messages on the request's token."""
    a, b = big_pair(workspace)
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    async with session("--root", str(workspace), home=home) as s:
        result = await s.call_tool(
            "audit_compare", {"a": str(a), "b": str(b), **FAST}, progress_callback=progress
        )
    assert not result.is_error, text(result)
    assert len(seen) >= 2
    values = [v for v, _, _ in seen]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all(t == 100.0 for _, t, _ in seen)
    assert any(m and m.startswith("reading") for _, _, m in seen)


async def test_cancel_stops_the_audit(workspace: Path, home: Path) -> None:
    """Cancelling mid-audit stops the CPU work, records nothing and leaves the session usable."""
    a, b = big_pair(workspace)
    args = {"a": str(a), "b": str(b), **FAST}
    started = anyio.Event()

    async def progress(value: float, total: float | None, message: str | None) -> None:
        started.set()

    before = set(child_pids())
    async with session("--root", str(workspace), home=home) as s:
        (pid,) = set(child_pids()) - before
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: s.call_tool("audit_compare", args, progress_callback=progress))
            await started.wait()
            at_cancel = cpu_ticks(pid)
            tg.cancel_scope.cancel()  # the SDK sends notifications/cancelled
        assert await anyio.to_thread.run_sync(_settled, pid)
        cancelled_cost = cpu_ticks(pid) - at_cancel
        assert store_records(home) == []
        before_full = cpu_ticks(pid)
        full = await s.call_tool("audit_compare", args)
        full_cost = cpu_ticks(pid) - before_full
    assert not full.is_error, text(full)
    assert [k for k, _ in store_records(home)] == ["audit.compare"]
    # The cancelled job stopped early: what it burned after the cancel is a fraction of a run.
    assert cancelled_cost < 0.5 * full_cost, (cancelled_cost, full_cost)


async def test_one_hundred_concurrent_calls(workspace: Path, home: Path) -> None:
    """100 calls in flight at once (mixed tools and errors) all get their own answer."""
    results: dict[int, Any] = {}

    async def call(i: int) -> None:
        if i % 10 == 9:
            results[i] = await s.call_tool("arch_params", {"path": f"missing-{i}.json"})
        elif i % 2:
            results[i] = await s.call_tool("arch_params", {"path": "config.json"})
        else:
            results[i] = await s.call_tool(
                "tokenizer_compare", {"a": "tok_a.json", "b": "tok_b.json"}
            )

    async with session("--root", str(workspace), home=home) as s:
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(call, i)
        alive = await s.call_tool("arch_params", {"path": "config.json"})
    assert len(results) == 100 and not alive.is_error
    for i, result in results.items():
        if i % 10 == 9:
            assert result.is_error and f"missing-{i}.json" in text(result)
        else:
            assert not result.is_error, text(result)
    tokenizer_runs = [k for k, _ in store_records(home) if k == "tokenizer.compare"]
    assert len(tokenizer_runs) == 50


async def test_client_disconnect_mid_call_writes_nothing(workspace: Path, home: Path) -> None:
    """The SDK client going away mid-audit: the server exits, the store holds no partial run."""
    a, b = big_pair(workspace)
    started = anyio.Event()

    async def progress(value: float, total: float | None, message: str | None) -> None:
        started.set()

    before = set(child_pids())
    with anyio.CancelScope() as outer:
        async with session("--root", str(workspace), home=home) as s:
            await s.call_tool("evidence_summarize", {"paths": ["train.log"]})
            async with anyio.create_task_group() as tg:
                call = s.call_tool(
                    "audit_compare", {"a": str(a), "b": str(b), **FAST}, progress_callback=progress
                )
                tg.start_soon(lambda: call)
                await started.wait()
                outer.cancel()  # leave every context: stdin closes, then the process is ended
    assert set(child_pids()) <= before
    assert [k for k, _ in store_records(home)] == ["evidence.summarize"]
    check = subprocess.run(
        [sys.executable, "-m", "companion", "store", "check", "--json"],
        env={"COMPANION_HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout)
    assert report["status"] == "ok" and not report["problems"], report


def test_stdin_eof_mid_call_ends_the_server_cleanly(workspace: Path, home: Path) -> None:
    """A raw client that closes stdin mid-audit: the server exits by itself with status 0."""
    a, b = big_pair(workspace)
    params = server_params("--root", str(workspace), home=home)
    proc = subprocess.Popen(
        [params.command, *params.args],
        env={**(params.env or {}), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def send(message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
        proc.stdin.flush()

    send(
        {
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        }
    )
    assert json.loads(proc.stdout.readline())["id"] == 1
    send({"method": "notifications/initialized"})
    send(
        {
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "audit_compare",
                "arguments": {"a": str(a), "b": str(b), **FAST},
                "_meta": {"progressToken": "p"},
            },
        }
    )
    first = json.loads(proc.stdout.readline())
    assert first["method"] == "notifications/progress", first
    proc.stdin.close()
    assert proc.wait(timeout=120) == 0
    assert store_records(home) == []
