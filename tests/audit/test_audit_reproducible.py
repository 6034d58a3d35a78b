"""An audit's figures are the same bits in every process: nothing sums in an order that
depends on Python's per-process string hashing (set iteration), so a re-run reproduces the
recorded JSON exactly, not only within `companion verify`'s tolerance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def _run(a: Path, b: Path, hash_seed: str, home: Path) -> dict[str, Any]:
    """`companion audit --json` in a fresh process with this PYTHONHASHSEED."""
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, COMPANION_HOME=str(home))
    cmd = [sys.executable, "-m", "companion", "audit", str(a), str(b), "--json", "--no-store"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    result: dict[str, Any] = json.loads(out)
    for volatile in ("seconds", "manifest", "markdown"):
        result.pop(volatile, None)
    return result


def test_two_processes_with_different_string_hashing_agree_to_the_bit(
    fam: dict[str, Path], tmp_path: Path
) -> None:
    first = _run(fam["base"], fam["permuted"], "1", tmp_path)
    second = _run(fam["base"], fam["permuted"], "2", tmp_path)
    assert first["layer_map"] and first["verdict"] == "derived"
    assert first == second
