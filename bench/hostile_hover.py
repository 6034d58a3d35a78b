"""Responsiveness under hostile files: hover latency on a normal config.json while a workspace
holds a FIFO named train.log, a config.json symlinked to /dev/zero and a config claiming 10^8
layers and experts (open, with a code action that scans the workspace). Baseline in the same
run: the same hovers in a clean workspace. Target: every hover answered within 1 s.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.rawlsp import RawServer

GOOD = {"model_type": "llama", "hidden_size": 4096, "vocab_size": 32000}
HUGE = {**GOOD, "num_hidden_layers": 10**8, "num_local_experts": 10**8, "intermediate_size": 11008}


def _open(s: RawServer, path: Path, text: str) -> None:
    """didOpen with the given text."""
    doc = {"uri": path.as_uri(), "languageId": "json", "version": 1, "text": text}
    s.send("textDocument/didOpen", {"textDocument": doc}, notify=True)


def _workspace(hostile: bool) -> tuple[Path, Path]:
    """A workspace with a normal config, plus the hostile files when asked."""
    ws = Path(tempfile.mkdtemp(prefix="companion-hostile-"))
    good = ws / "good" / "config.json"
    good.parent.mkdir()
    good.write_text(json.dumps(GOOD, indent=2))
    if hostile:
        os.mkfifo(ws / "train.log")
        (ws / "zero").mkdir()
        os.symlink("/dev/zero", ws / "zero" / "config.json")
        (ws / "huge").mkdir()
        (ws / "huge" / "config.json").write_text(json.dumps(HUGE))
    return ws, good


def hovers(hostile: bool, count: int) -> list[float]:
    """Seconds per hover on the normal config (hostile files open and scanned first)."""
    ws, good = _workspace(hostile)
    s = RawServer()
    s.initialize(ws.as_uri())
    if hostile:
        huge = ws / "huge" / "config.json"
        _open(s, huge, huge.read_text())
        pos = {"line": 0, "character": 0}
        s.send(
            "textDocument/codeAction",
            {
                "textDocument": {"uri": huge.as_uri()},
                "range": {"start": pos, "end": pos},
                "context": {"diagnostics": []},
            },
        )
    _open(s, good, good.read_text())
    times = []
    for _ in range(count):
        t = time.perf_counter()
        rid = s.send(
            "textDocument/hover",
            {"textDocument": {"uri": good.as_uri()}, "position": {"line": 2, "character": 5}},
        )
        s.response(rid)
        times.append(time.perf_counter() - t)
    s.kill()
    return times


def main() -> None:
    """Run both workspaces and print the report."""
    base = hovers(False, 20)
    hostile = hovers(True, 20)
    for label, t in (("clean workspace (baseline)", base), ("hostile files open", hostile)):
        print(
            f"{label:28s}: hover median {statistics.median(t) * 1000:6.1f} ms, "
            f"max {max(t) * 1000:6.1f} ms"
        )
    verdict = "OK" if max(hostile) <= 1.0 else "OVER"
    print(f"target: every hover within 1 s while hostile files are open: {verdict}")


if __name__ == "__main__":
    main()
