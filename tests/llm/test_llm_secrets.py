"""A canary key must never appear in anything companion writes: CLI output, logs, LSP traffic,
the store, results, error texts. Whole chats run through the CLI and the LSP server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers.openai_server import OpenAIServer, ToolCall, Turn
from helpers.rawlsp import RawServer, run_cli

CANARY = "sk-CANARY-7f3a9c1e5b2d4f6a8e0c"
ECHO = Turn(status=401, error_message="Incorrect API key provided: {auth}")


def all_bytes_under(root: Path) -> dict[str, bytes]:
    """Every file under `root` (store, WAL, results, logs)."""
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_clean(where: str, data: bytes | str) -> None:
    raw = data.encode() if isinstance(data, str) else data
    assert CANARY.encode() not in raw, f"canary key leaked into {where}"
    assert CANARY[3:].encode() not in raw, f"canary key (without prefix) leaked into {where}"


def test_cli_chat_never_writes_the_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    doc = tmp_path / "notes.md"
    doc.write_text("first loss 12.2 at step 0\n")
    script = [
        Turn(tool_calls=[ToolCall("workspace_scan", json.dumps({"paths": [str(tmp_path)]}))]),
        Turn(text="Consistent with a random start (ln V).", chunks=3),
        ECHO,
    ]
    with OpenAIServer(script) as srv:
        env = {
            "COMPANION_HOME": str(home),
            "COMPANION_LLM_BASE_URL": srv.base_url,
            "COMPANION_LLM_MODEL": "test-model",
            "COMPANION_LLM_API_KEY_ENV": "CANARY_KEY",
            "CANARY_KEY": CANARY,
            "COMPANION_LOG_LEVEL": "DEBUG",
        }
        ok = run_cli("chat", "trained from scratch?", "--file", str(doc), env=env)
        failed = run_cli("chat", "again?", "--json", env=env)
        auth = [r.headers.get("authorization") for r in srv.chat_requests()]
    assert ok.returncode == 0, ok.stderr
    assert "Consistent with a random start" in ok.stdout
    assert "[tool workspace.scan: ok]" in ok.stderr
    assert failed.returncode == 2 and "rejected the credentials" in failed.stderr
    assert "$CANARY_KEY" in failed.stderr and "***" in failed.stderr
    assert auth == [f"Bearer {CANARY}"] * 3  # the key did reach the endpoint
    for name, stream in (("stdout", ok.stdout), ("stderr", ok.stderr)):
        assert_clean(f"CLI {name}", stream)
    assert_clean("CLI error text", failed.stderr + failed.stdout)
    files = all_bytes_under(home)
    assert any(name.endswith("store.sqlite3") for name in files)
    stored = b"".join(files.values())
    assert b"trained from scratch?" in stored  # the transcript was saved...
    for name, data in files.items():
        assert_clean(name, data)  # ...without the key


def test_lsp_chat_never_sends_or_logs_the_key(tmp_path: Path) -> None:
    home, ws = tmp_path / "home", tmp_path / "ws"
    ws.mkdir()
    (ws / "config.json").write_text('{"model_type": "llama"}')
    log_file = tmp_path / "server.log"
    script = [
        Turn(tool_calls=[ToolCall("workspace_scan", "{}")]),
        Turn(text="Inconclusive.", chunks=2),
        ECHO,
    ]
    with OpenAIServer(script) as srv:
        server = RawServer(
            ["--log-file", str(log_file)],
            env={"COMPANION_HOME": str(home), "CANARY_KEY": CANARY},
        )
        traffic: list[dict[str, Any]] = []
        try:
            llm = {"baseUrl": srv.base_url, "model": "test-model", "apiKeyEnv": "CANARY_KEY"}
            options = {"companion": {"logLevel": "DEBUG", "llm": llm}}
            rid = server.send(
                "initialize",
                {
                    "processId": None,
                    "rootUri": ws.as_uri(),
                    "capabilities": {"window": {"workDoneProgress": True}},
                    "initializationOptions": options,
                },
            )
            traffic.append(server.response(rid))
            server.send("initialized", {}, notify=True)
            for message in ("was it derived?", "and now?"):
                rid = server.send("companion/chat", {"message": message, "workDoneToken": "t"})
                for _ in range(500):
                    msg = server.read()
                    traffic.append(msg)
                    if msg.get("id") == rid and "method" not in msg:
                        break
            server.send("shutdown")
            server.send("exit", notify=True)
            server.proc.wait(timeout=10)
            stderr = server.proc.stderr.read() if server.proc.stderr else b""
        finally:
            server.kill()
    answers = [m for m in traffic if "result" in m or "error" in m]
    assert answers[1]["result"]["text"] == "Inconclusive."
    assert answers[1]["result"]["toolCalls"][0]["name"] == "workspace.scan"
    assert "rejected the credentials" in answers[2]["error"]["message"]
    deltas = [m["params"]["value"].get("delta") for m in traffic if m.get("method") == "$/progress"]
    assert "Inconclusive." in "".join(d for d in deltas if d)
    assert_clean("LSP traffic", json.dumps(traffic))
    assert_clean("server stderr", stderr)
    assert_clean("server log file", log_file.read_bytes())
    assert log_file.read_bytes()  # something was logged, so the check means something
    for name, data in all_bytes_under(home).items():
        assert_clean(name, data)
