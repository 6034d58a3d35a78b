"""Real editors drive the real server: headless Neovim (built-in LSP) and Emacs eglot (batch)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CLIENTS = Path(__file__).parent / "clients"


def _workspace(root: Path) -> Path:
    """A generated workspace with a config and a log."""
    (root / "ckpt").mkdir(parents=True)
    (root / "ckpt" / "config.json").write_text('{"model_type": "llama", "hidden_size": 64}')
    (root / "train.log").write_text("iter 0: loss 10.8\n")
    return root


def _run(argv: list[str], tmp_path: Path) -> dict[str, object]:
    """Run an editor under a timeout and read the result it wrote."""
    ws = _workspace(tmp_path / "ws")
    out = tmp_path / "out.json"
    env = {
        **os.environ,
        "COMPANION_CMD": json.dumps([sys.executable, "-m", "companion", "serve"]),
        "WS": str(ws),
        "OUT": str(out),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "HOME": str(tmp_path / "home"),
    }
    proc = subprocess.run(
        ["timeout", "60", *argv], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    names = sorted(Path(a["path"]).name for a in result["artifacts"])
    assert names == ["config.json", "train.log"]
    return result  # type: ignore[no-any-return]


@pytest.mark.skipif(
    shutil.which("nvim") is None and not os.environ.get("CI"), reason="nvim missing"
)
def test_neovim_runs_scan(tmp_path: Path) -> None:
    _run(
        [
            "nvim",
            "--headless",
            "-u",
            "NONE",
            "-i",
            "NONE",
            "-n",
            "-c",
            f"luafile {CLIENTS / 'scan.lua'}",
        ],
        tmp_path,
    )


@pytest.mark.skipif(
    shutil.which("emacs") is None and not os.environ.get("CI"), reason="emacs missing"
)
def test_emacs_eglot_runs_scan(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    _run(["emacs", "--batch", "-l", str(CLIENTS / "scan.el")], tmp_path)
