"""`companion demo` (what `make run` runs): every section, with and without an LLM endpoint."""

from __future__ import annotations

import json
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
    "audit.query",
    "store.verify",
    "chat (grounded in the demo store)",
)


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
        assert "The fine-tune is derived; the scratch run starts at ln V." in out.stdout
        assert "tools called: audit.query" in out.stdout
        # the tool result the model saw came from the demo's own store
        second = srv.chat_requests()[1].body["messages"]
        tool_msg = next(m for m in second if m["role"] == "tool")
        assert "audit.compare" in tool_msg["content"]
    assert "derived" in out.stdout and "independent" in out.stdout
    assert (tmp_path / "ws" / ".companion" / "store.sqlite3").is_file()
    assert (tmp_path / "ws" / "ask.chat.md").is_file()


def test_demo_without_endpoint_shows_setup_help(tmp_path: Path) -> None:
    env = {"COMPANION_LLM_BASE_URL": "", "COMPANION_LLM_MODEL": "", "OPENAI_BASE_URL": ""}
    out = run_cli("demo", str(tmp_path / "ws"), env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "LLM chat is not configured" in out.stdout and "Ollama" in out.stdout
