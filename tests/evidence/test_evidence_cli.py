"""The CLI front door (`companion evidence ...`) and the demo section."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers.evidence_runs import scratch_run
from pydantic import BaseModel

from companion.evidence import demo, writers
from companion.toolbox import run_tool
from companion.tools import ToolContext


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m companion` with an isolated home."""
    env = {**os.environ, "COMPANION_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "companion", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_cli_json_plot_and_flags(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    writers.megatron(scratch_run(), log, interval=5)
    out_png = tmp_path / "plots" / "curve.png"
    res = cli(
        "evidence",
        str(log),
        "--vocab-size",
        "256",
        "--plot",
        str(out_png),
        "--claimed-tokens",
        "15M",
        "--json",
        "--no-store",
        home=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert {"verdict", "first_step", "first_loss", "ln_vocab", "reasons", "format"} <= data.keys()
    assert data["verdict"] == "from_scratch" and data["first_step"] == 5
    assert data["claimed_tokens"] == 15e6 and data["manifest"]["parameters"]["vocab_size"] == 256
    assert out_png.is_file() and out_png.with_suffix(".svg").is_file()
    helptext = cli("evidence", "--help", home=tmp_path).stdout
    for flag in ("--vocab-size", "--config", "--plot", "--json", "--claimed-tokens"):
        assert flag in helptext


def test_cli_errors_exit_2_with_next_step(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "c" * 64 + "\n")
    res = cli("evidence", str(log), "--no-store", home=tmp_path)
    assert res.returncode == 2 and "git lfs pull" in res.stderr + res.stdout
    cfg = tmp_path / "config.json"
    cfg.write_text('{"vocab_size": 256}')
    res = cli("evidence", str(log), "--vocab-size", "3", "--config", str(cfg), home=tmp_path)
    assert res.returncode == 2 and "either vocab_size or config" in res.stderr + res.stdout


def test_demo_section_trains_and_summarizes(tmp_path: Path) -> None:
    demo.build(tmp_path)
    shown: dict[str, BaseModel] = {}
    demo.run(
        tmp_path,
        ToolContext(roots=[tmp_path], runner=run_tool),
        lambda title, r: shown.__setitem__(title, r),
    )
    verdicts = {t.split(": ")[1]: r.model_dump()["verdict"] for t, r in shown.items()}
    assert verdicts == {"scratch-run": "from_scratch", "finetune-run": "warm_start"}
    assert (tmp_path / "evidence" / "scratch-run" / "loss.png").is_file()
