"""The `companion audit` command line and the demo section."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from companion.audit import demo as audit_demo
from companion.toolbox import run_tool
from companion.tools import ToolContext


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m companion ...`."""
    return subprocess.run(
        [sys.executable, "-m", "companion", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_json_roles_and_report(fam: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    base, ind = str(fam["base"]), str(fam["independent"])
    proc = cli(
        "audit", base, ind, "--roles", "norm,attn", "--json", "--report", str(out), "--no-store"
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "independent"
    assert {g["role"] for g in data["per_role"]} == {"norm", "attn"}
    assert data["reasons"] and all("statement" in r for r in data["reasons"])
    assert data["manifest"]["parameters"]["roles"] == ["norm", "attn"]
    assert data["manifest"]["inputs"][0]["sha256"]
    assert "Cosine trap" in out.read_text()


def test_cli_baseline_and_markdown(fam: dict[str, Path]) -> None:
    proc = cli(
        "audit",
        str(fam["base"]),
        str(fam["finetune"]),
        "--baseline",
        str(fam["independent"]),
        "--no-store",
    )
    assert proc.returncode == 0, proc.stderr
    assert "DERIVED" in proc.stdout and "third model" in proc.stdout


def test_cli_bad_input_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 16)
    proc = cli("audit", str(bad), str(bad), "--no-store")
    assert proc.returncode == 2
    assert (
        "exceeds" in proc.stderr and "Next step" in proc.stderr and "Traceback" not in proc.stderr
    )


def test_demo_section(tmp_path: Path) -> None:
    audit_demo.build(tmp_path)
    shown: list[tuple[str, str]] = []
    audit_demo.run(
        tmp_path,
        ToolContext(roots=[tmp_path], runner=run_tool),
        lambda t, r: shown.append((t, r.verdict)),
    )  # type: ignore[attr-defined]
    assert [v for _, v in shown] == ["derived", "independent"]
