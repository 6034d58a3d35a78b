"""MCP latency benchmark: `tools/list` and a cheap `tools/call`, p50/p95 over 500 calls each,
and spawn-to-initialize time; `companion mcp` against a bare echo server on the same SDK
(bench/mcp_echo.py), both measured in this run through the SDK's stdio client.

Target: companion adds ≤ 2 ms at p95 over the echo server (less the tool's own work, which
is measured in-process and printed). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

HERE = Path(__file__).resolve().parent
CONFIG = {
    "model_type": "llama",
    "vocab_size": 32000,
    "hidden_size": 1024,
    "num_hidden_layers": 8,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "intermediate_size": 2816,
}


def _params(kind: str, root: Path) -> StdioServerParameters:
    """The companion server (rooted at `root`) or the echo baseline."""
    env = {"COMPANION_HOME": str(root / "home")}
    if kind == "echo":
        return StdioServerParameters(command=sys.executable, args=[str(HERE / "mcp_echo.py")])
    if kind == "echo+listing":
        listing = str(root / "listing.json")
        return StdioServerParameters(
            command=sys.executable, args=[str(HERE / "mcp_echo.py"), listing]
        )
    args = ["-m", "companion", "mcp", "--root", str(root)]
    return StdioServerParameters(command=sys.executable, args=args, env=env)


def _call(kind: str) -> tuple[str, dict[str, Any]]:
    """The cheap call of each server: arch_params on a small config, or echo."""
    if kind.startswith("echo"):
        return "echo", {"text": "config.json"}
    return "arch_params", {"path": "config.json"}


async def _timed(n: int, op: Callable[[], Awaitable[Any]]) -> list[float]:
    """Seconds per sequential call (after 20 warm-up calls)."""
    for _ in range(20):
        await op()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await op()
        out.append(time.perf_counter() - t)
    return out


async def _latency(kind: str, root: Path, n: int) -> dict[str, list[float]]:
    """tools/list and tools/call round trips on one session."""
    name, args = _call(kind)
    async with stdio_client(_params(kind, root)) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        listed = await _timed(n, s.list_tools)

        async def call() -> None:
            result = await s.call_tool(name, args)
            assert not result.is_error, result

        called = await _timed(n, call)
    return {"tools/list": listed, "tools/call": called}


async def _start(kind: str, root: Path, runs: int) -> float:
    """Median seconds from spawn to the initialize reply."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        async with stdio_client(_params(kind, root)) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _in_process(root: Path, n: int) -> list[float]:
    """Seconds per call of the cheap tool itself, in-process (no protocol at all)."""
    from companion.settings import Settings
    from companion.toolbox import context, run_tool

    ctx = context(Settings(), [root], confine=True)
    name, args = _call("companion")
    times = []
    for _ in range(n):
        t = time.perf_counter()
        run_tool(name.replace("_", "."), args, ctx)
        times.append(time.perf_counter() - t)
    return times


def _pct(values: list[float], q: float) -> float:
    """The q-quantile in milliseconds."""
    return 1000 * statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def _write_listing(root: Path) -> None:
    """companion's own tools/list payload, for the echo server to serve as its listing."""
    from companion.mcp.schema import declarations

    tools = [
        t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in declarations(False)
    ]
    (root / "listing.json").write_text(json.dumps(tools))
    size = len(json.dumps({"tools": tools}))
    print(f"companion's tools/list: {len(tools)} tools, {size / 1024:.0f} KB of JSON")


def _python_start(runs: int) -> float:
    """Median seconds of `python -c pass`."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def _run(n: int, starts: int) -> None:
    """Measure both servers and print the comparison."""
    root = Path(tempfile.mkdtemp(prefix="mcp-bench-"))
    (root / "config.json").write_text(json.dumps(CONFIG))
    _write_listing(root)
    kinds = ("echo", "echo+listing", "companion")
    rows = {k: await _latency(k, root, n) for k in kinds}
    print(f"MCP latency over {n} sequential calls (ms; SDK stdio client, same run)")
    print(f"{'':24} {'p50':>7} {'p95':>7} {'companion p95 minus this':>25}")
    for op in ("tools/list", "tools/call"):
        for k in kinds:
            v = rows[k][op]
            added = _pct(rows["companion"][op], 0.95) - _pct(v, 0.95)
            extra = "" if k == "companion" else f"{added:25.2f}"
            print(f"{op + ' ' + k:24} {_pct(v, 0.5):7.2f} {_pct(v, 0.95):7.2f} {extra}")
    own = _in_process(root, n)
    call, echo = rows["companion"]["tools/call"], rows["echo"]["tools/call"]
    print(f"arch_params itself, in-process: p50 {_pct(own, 0.5):.2f}, p95 {_pct(own, 0.95):.2f}")
    for q in (0.5, 0.95):
        added = _pct(call, q) - _pct(echo, q) - _pct(own, q)
        print(f"tools/call added by companion's MCP layer at p{int(q * 100)}: {added:.2f} ms")
    py = _python_start(starts)
    echo_start = await _start("echo", root, starts)
    companion_start = await _start("companion", root, starts)
    print(
        f"spawn to initialize reply (median of {starts}): python -c pass {1000 * py:.0f} ms, "
        f"echo {1000 * echo_start:.0f} ms, companion {1000 * companion_start:.0f} ms "
        f"({1000 * (companion_start - echo_start):+.0f} ms over echo)"
    )


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--starts", type=int, default=10)
    ns = parser.parse_args()
    asyncio.run(_run(ns.calls, ns.starts))


if __name__ == "__main__":
    main()
