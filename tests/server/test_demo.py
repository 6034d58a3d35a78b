"""`companion demo` (what `make run` runs): every section, with and without an LLM endpoint.

The terminal gets one line per question; each result's full report is in `<ws>/reports/`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers.openai_server import OpenAIServer, ToolCall, Turn
from helpers.rawlsp import run_cli

SECTIONS = (
    "workspace.scan",
    "arch.diff",
    "tokenizer.compare",
    "evidence.summarize: scratch-run",
    "evidence.summarize: finetune-run",
    "audit.compare",
    "case: was Solar-Open-100B derived from GLM-4.5-Air?",
    "audit.query",
    "store.verify",
    "chat (grounded in the demo store)",
)


def reports(ws: Path) -> str:
    """Every report the demo wrote, concatenated."""
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((ws / "reports").glob("*.md")))


def test_demo_runs_every_section_with_a_chat_endpoint(tmp_path: Path) -> None:
    script = [
        Turn(tool_calls=[ToolCall("audit_query", json.dumps({"kind": "audit.compare"}))]),
        Turn(chunks=["The fine-tune ", "is derived; the scratch run ", "starts at ln V."]),
    ]
    with OpenAIServer(script, model="demo-model") as srv:
        env = {
            "COMPANION_LLM_BASE_URL": srv.base_url,
            "COMPANION_LLM_MODEL": "demo-model",
            "OPENAI_API_KEY": "sk-demo",
            "COLUMNS": "200",
        }
        out = run_cli("demo", str(tmp_path / "ws"), env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        for title in SECTIONS:
            assert title in out.stdout, title
        detail = reports(tmp_path / "ws")
        assert "The fine-tune is derived; the scratch run starts at ln V." in detail
        assert "tools called: audit.query" in detail
        # the tool result the model saw came from the demo's own store
        second = srv.chat_requests()[1].body["messages"]
        tool_msg = next(m for m in second if m["role"] == "tool")
        assert "audit.compare" in tool_msg["content"]
    assert "derived" in out.stdout and "independent" in out.stdout
    # recorded in the store every command reads (here the test's COMPANION_HOME)
    assert (Path(os.environ["COMPANION_HOME"]) / "store.sqlite3").is_file()
    assert (tmp_path / "ws" / "ask.chat.md").is_file()


def test_demo_without_endpoint_shows_setup_help(tmp_path: Path) -> None:
    env = {"COMPANION_LLM_BASE_URL": "", "COMPANION_LLM_MODEL": "", "OPENAI_BASE_URL": ""}
    out = run_cli("demo", str(tmp_path / "ws"), env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    detail = reports(tmp_path / "ws")
    assert "LLM chat is not configured" in detail and "Ollama" in detail
