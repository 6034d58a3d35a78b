"""Chat latency benchmark: time to the first streamed token through `companion/chat` versus
the openai SDK calling the same local endpoint directly, measured in the same run.

Target: the server adds ≤ 20 ms (median) to the time to first token. The endpoint is the
scripted OpenAI-compatible test server on 127.0.0.1 (no model, so the figures isolate our
overhead). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.openai_server import OpenAIServer, Turn
from helpers.rawlsp import RawServer

REPLY = Turn(text="Inconclusive: the first logged loss is missing. " * 4, chunks=20)


async def direct(base_url: str, runs: int) -> list[float]:
    """Seconds to the first content delta, SDK straight to the endpoint (one warm client)."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    times = []
    messages = [{"role": "user", "content": "Was it derived?"}]
    for i in range(runs + 1):
        t = time.perf_counter()
        stream = await client.chat.completions.create(
            model="test-model",
            messages=messages,
            stream=True,  # type: ignore[arg-type]
        )
        elapsed = None
        async for chunk in stream:  # read it all, as the server does, so connections are reused
            if elapsed is None and chunk.choices and chunk.choices[0].delta.content:
                elapsed = time.perf_counter() - t
        assert elapsed is not None
        if i:  # the first request warms the connection pool, as the server's first chat does
            times.append(elapsed)
    await client.close()
    return times


def through_server(base_url: str, runs: int, home: Path, ws: Path) -> list[float]:
    """Seconds from sending companion/chat to the first `$/progress` delta."""
    server = RawServer(env={"COMPANION_HOME": str(home), "BENCH_KEY": "bench"})
    try:
        llm = {"baseUrl": base_url, "model": "test-model", "apiKeyEnv": "BENCH_KEY"}
        options = {"companion": {"llm": llm}}
        rid = server.send(
            "initialize",
            {"processId": None, "rootUri": ws.as_uri(), "capabilities": {},
             "initializationOptions": options},
        )  # fmt: skip
        server.response(rid)
        server.send("initialized", {}, notify=True)
        times = []
        for i in range(runs + 1):
            token = f"bench-{i}"
            t = time.perf_counter()
            rid = server.send(
                "companion/chat", {"message": "Was it derived?", "workDoneToken": token}
            )
            first = None
            for _ in range(1000):
                msg = server.read()
                value = (msg.get("params") or {}).get("value") or {}
                if first is None and msg.get("method") == "$/progress" and value.get("delta"):
                    first = time.perf_counter() - t
                if msg.get("id") == rid and "method" not in msg:
                    break
            if i and first is not None:
                times.append(first)
        return times
    finally:
        server.close_stdin_and_wait()


def summary(name: str, times: list[float]) -> float:
    """Print median and p90 in ms; return the median."""
    ordered = sorted(times)
    med = statistics.median(ordered) * 1000
    p90 = ordered[int(0.9 * (len(ordered) - 1))] * 1000
    print(f"{name:<34} median {med:7.2f} ms   p90 {p90:7.2f} ms   (n={len(times)})")
    return med


def main() -> int:
    """Run both paths against one endpoint and print the overhead."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=40)
    ns = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, OpenAIServer([REPLY]) as srv:
        home, ws = Path(tmp) / "home", Path(tmp) / "ws"
        ws.mkdir()
        base = summary("SDK -> endpoint (baseline)", asyncio.run(direct(srv.base_url, ns.runs)))
        lsp = summary(
            "companion/chat -> $/progress delta", through_server(srv.base_url, ns.runs, home, ws)
        )
    added = lsp - base
    print(f"server adds {added:+.2f} ms to the first token ({lsp / base:.2f}x the baseline); "
          f"target <= 20 ms: {'met' if added <= 20 else 'NOT met'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
