"""A real Cline CLI, headless, calls companion's evidence tool through MCP.

A scripted OpenAI-compatible endpoint on 127.0.0.1 plays the model: its first reply is a
streamed tool call of `companion__evidence_summarize`; its second, plain text, ends the task.
Cline's state, telemetry and network are checked: it runs under `strace -f -e connect`, and
every inet connection (Cline, its MCP server, their children) must go to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.editors import make_workspace
from helpers.openai_server import OpenAIServer, ToolCall, Turn

pytestmark = pytest.mark.timeout(300)
SETTINGS = {"telemetryOptOut": True, "autoUpdateEnabled": False}
_INET = re.compile(
    r'connect\(\d+, \{sa_family=AF_INET6?, .*?(?:inet_addr|inet_pton)\((?:AF_INET6, )?"([^"]+)"'
)


def _cline_env(tmp: Path) -> tuple[dict[str, str], Path]:
    """Cline isolated in tmp: its own HOME and CLINE_DIR, local sessions, no updates."""
    cline_dir, home = tmp / "cline", tmp / "cline-home"
    (cline_dir / "data" / "settings").mkdir(parents=True)
    home.mkdir()
    (cline_dir / "data" / "settings" / "global-settings.json").write_text(json.dumps(SETTINGS))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CLINE_DIR": str(cline_dir),
        "CLINE_SESSION_BACKEND_MODE": "local",  # else a detached hub daemon outlives the run
        "CLINE_NO_AUTO_UPDATE": "1",
        "DO_NOT_TRACK": "1",
        # telemetryOptOut does not stop Cline 3.0.65 polling PostHog feature flags at
        # data.cline.bot; its own test switch does (it only swaps the flag provider).
        "IS_TEST": "true",
    }
    return env, cline_dir / "data" / "settings"


def _mcp_settings(settings: Path, ws: Path, home: Path) -> None:
    """companion as Cline's MCP server, in the shape docs/mcp.md gives users."""
    server = {
        "command": sys.executable,
        "args": ["-m", "companion", "mcp", "--root", str(ws)],
        "env": {"COMPANION_HOME": str(home)},
        "disabled": False,
        "timeout": 60,
    }
    (settings / "cline_mcp_settings.json").write_text(
        json.dumps({"mcpServers": {"companion": server}})
    )


def _inet_peers(trace: Path) -> list[str]:
    """Addresses of every AF_INET/AF_INET6 connect() in an strace log."""
    return [m.group(1) for line in trace.read_text().splitlines() if (m := _INET.search(line))]


def test_cline_calls_companion_over_mcp(cline: Path, tmp_path: Path) -> None:
    """Cline calls the tool; the verdict reaches the model; only 127.0.0.1 is contacted."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is needed to check Cline's connections: apt-get install strace")
    ws, home = make_workspace(tmp_path / "ws"), tmp_path / "companion-home"
    env, settings = _cline_env(tmp_path)
    _mcp_settings(settings, ws, home)
    arguments = json.dumps({"paths": ["train.log", "config.json"]})
    script = [
        Turn(tool_calls=[ToolCall("companion__evidence_summarize", arguments)]),
        Turn(text="The first loss sits at ln V: a from-scratch start.", chunks=3),
    ]
    trace = tmp_path / "connect.trace"
    with OpenAIServer(script, model="scripted") as srv:
        auth = [str(cline), "auth", "-p", "openai-compatible", "-k", "dummy", "-m", "scripted"]
        done = subprocess.run(
            [*auth, "-b", srv.base_url], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        task = [
            str(cline),
            "-c",
            str(ws),
            "-t",
            "120",
            "--json",
            "summarize the training log evidence",
        ]
        run = subprocess.run(
            [strace, "-f", "-qq", "-e", "trace=connect", "-o", str(trace), *task],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            stdin=subprocess.DEVNULL,
        )
        requests = srv.chat_requests()
    assert run.returncode == 0, run.stderr[-3000:]
    assert '"toolName":"companion__evidence_summarize"' in run.stdout, run.stdout[-3000:]
    assert len(requests) >= 2
    offered = [t["function"]["name"] for t in requests[0].body.get("tools", [])]
    assert "companion__evidence_summarize" in offered and "companion__audit_compare" in offered
    tool_messages = [m for m in requests[1].body["messages"] if m.get("role") == "tool"]
    assert tool_messages, requests[1].body["messages"]
    reply = json.dumps(tool_messages[-1]["content"])
    assert "trained from scratch" in reply and "ln V = 11.762" in reply
    saved = json.loads((settings / "global-settings.json").read_text())
    assert {k: saved.get(k) for k in SETTINGS} == SETTINGS  # Cline kept telemetry off
    peers = _inet_peers(trace)
    assert "127.0.0.1" in peers  # the trace did see Cline reach the endpoint
    assert set(peers) == {"127.0.0.1"}, peers
