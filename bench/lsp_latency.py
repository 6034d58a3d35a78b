"""LSP latency benchmark: cold start to initialize reply, and executeCommand p50/p95.

Baselines measured in the same run: a bare `python -c pass` start, and a bare pygls server
(no features) to its initialize reply, the floor for any pygls server. Targets: cold start
≤ 400 ms; executeCommand p95 ≤ 30 ms over 1,000 calls. Then runs `config_latency.py`
(hover, code lens and diagnostics on a 100 KB config.json, p95 ≤ 30 ms against a plain
hover baseline). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.rawlsp import RawServer


def bare_python(runs: int) -> float:
    """Median seconds for `python -c pass` (the interpreter's own start-up)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# The floor any pygls server pays: importing pygls and lsprotocol, then the handshake.
BARE_PYGLS = [
    sys.executable,
    "-c",
    "from pygls.lsp.server import LanguageServer; LanguageServer('bare', '0').start_io()",
]


def cold_start(runs: int, command: list[str] | None = None) -> float:
    """Median seconds from process spawn to the initialize reply (companion, or `command`)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s = RawServer(command=command)
        s.initialize()
        times.append(time.perf_counter() - t)
        s.close_stdin_and_wait()
    return statistics.median(times)


def command_latency(calls: int, workspace: Path) -> list[float]:
    """Per-call seconds of sequential companion.workspace.scan requests."""
    s = RawServer()
    s.initialize(workspace.as_uri())
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        rid = s.send(
            "workspace/executeCommand",
            {"command": "companion.workspace.scan", "arguments": [{"paths": [str(workspace)]}]},
        )
        s.response(rid)
        out.append(time.perf_counter() - t)
    s.close_stdin_and_wait()
    return out


def pct(values: list[float], q: float) -> float:
    """The q-quantile in milliseconds."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Run and print the report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--calls", type=int, default=1000)
    ns = ap.parse_args()
    base = bare_python(ns.runs)
    cold = cold_start(ns.runs)
    floor = cold_start(ns.runs, BARE_PYGLS)
    with tempfile.TemporaryDirectory() as d:
        ws = Path(d)
        (ws / "config.json").write_text('{"model_type": "llama"}')
        (ws / "train.log").write_text("iter 0: loss 10.8\n")
        lat = command_latency(ns.calls, ws)
    print(f"baseline python -c pass      : {base * 1000:7.1f} ms")
    print(
        f"cold start -> initialize     : {cold * 1000:7.1f} ms  ({cold / base:.1f}x baseline; "
        f"target <= 400 ms) {'OK' if cold <= 0.4 else 'OVER'}"
    )
    print(
        f"bare pygls server -> init    : {floor * 1000:7.1f} ms  (companion adds "
        f"{(cold - floor) * 1000:.0f} ms over the floor any pygls server pays)"
    )
    print(f"executeCommand scan p50      : {pct(lat, 0.5):7.2f} ms")
    print(
        f"executeCommand scan p95      : {pct(lat, 0.95):7.2f} ms  (target <= 30 ms) "
        f"{'OK' if pct(lat, 0.95) <= 30 else 'OVER'}"
    )
    import config_latency  # editor features on a large config, against the same server

    config_latency.run(ns.calls)


if __name__ == "__main__":
    main()
