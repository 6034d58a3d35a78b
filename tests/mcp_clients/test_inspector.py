"""The MCP Inspector CLI lists companion's tools and calls the evidence tool on a log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.editors import make_workspace

pytestmark = pytest.mark.timeout(300)


def _inspect(inspector: Path, ws: Path, home: Path, *method: str) -> Any:
    """Run `mcp-inspector --cli` against `companion mcp` and parse its JSON answer."""
    argv = [str(inspector), "--cli", "-e", f"COMPANION_HOME={home}"]
    argv += [sys.executable, "-m", "companion", "mcp", "--root", str(ws), *method]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_inspector_lists_and_calls(inspector: Path, tmp_path: Path) -> None:
    """tools/list shows every tool with schemas; tools/call returns the evidence verdict."""
    ws, home = make_workspace(tmp_path / "ws"), tmp_path / "home"
    listed = _inspect(inspector, ws, home, "--method", "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}
    assert "evidence_summarize" in tools and "audit_compare" in tools
    assert tools["evidence_summarize"]["annotations"]["readOnlyHint"] is True
    assert tools["evidence_summarize"]["outputSchema"]["type"] == "object"
    called = _inspect(
        inspector,
        ws,
        home,
        "--method",
        "tools/call",
        "--tool-name",
        "evidence_summarize",
        "--tool-arg",
        'paths=["train.log", "config.json"]',
    )
    assert called.get("isError") is not True, called
    assert called["content"][0]["text"].startswith(
        "# Training-log evidence: **trained from scratch**"
    )
    assert called["structuredContent"]["verdict"] == "from_scratch"
    refused = _inspect(
        inspector,
        ws,
        home,
        "--method",
        "tools/call",
        "--tool-name",
        "evidence_summarize",
        "--tool-arg",
        'paths=["/etc/passwd"]',
    )
    assert refused["isError"] is True and "outside the workspace" in refused["content"][0]["text"]
