"""Class 1: untrusted files never freeze or exhaust the server (regular files, bounded reads)."""

from __future__ import annotations

import json
import os
import queue
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers.rawlsp import RawServer

from companion.architecture.analysis import analyse
from companion.workspace.engine import scan

pytestmark = pytest.mark.timeout(180)
WAIT = 30.0  # generous: the answer must come at all, not fast


def hostile_config(layers: int = 10**8) -> str:
    """A config whose counts are absurd (a parameter counter that loops per layer stalls)."""
    return json.dumps(
        {
            "model_type": "qwen3_moe",
            "hidden_size": 64,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 128,
            "moe_intermediate_size": 32,
            "num_experts": 10**8,
            "num_experts_per_tok": 2,
            "vocab_size": 1000,
            "mlp_only_layers": list(range(5000)),
        }
    )


def hostile_workspace(root: Path) -> Path:
    """A workspace with a FIFO named like a log and a config.json symlinked to /dev/zero."""
    os.mkfifo(root / "train.log")
    (root / "zero").mkdir()
    (root / "zero" / "config.json").symlink_to("/dev/zero")
    (root / "big").mkdir()
    (root / "big" / "config.json").write_text(hostile_config())
    return root


def in_thread(func: Any, *args: Any) -> Any:
    """Run `func` in a daemon thread and return its result, failing after WAIT seconds."""
    out: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=lambda: out.put(func(*args)), daemon=True).start()
    try:
        return out.get(timeout=WAIT)
    except queue.Empty:
        pytest.fail(f"{func.__name__} did not return within {WAIT:.0f} s")


def test_scan_skips_fifos_and_devices(tmp_path: Path) -> None:
    result = in_thread(scan, [hostile_workspace(tmp_path)], 1000)
    reasons = " ".join(p.reason for p in result.problems)
    assert "not a regular file" in reasons
    assert not any(a.path.endswith("train.log") for a in result.artifacts)


def test_absurd_counts_are_bounded(tmp_path: Path) -> None:
    a = in_thread(analyse, hostile_config(), tmp_path)
    assert a.spec is not None and a.spec.num_layers is None  # out of range: ignored, noted
    assert any("out of range" in n for n in a.spec.notes)


def answer(server: RawServer, rid: int | None) -> dict[str, Any]:
    """The response to `rid`, or a test failure after WAIT seconds (never a hang)."""
    out: queue.Queue[dict[str, Any]] = queue.Queue()
    threading.Thread(target=lambda: out.put(server.response(rid, 2000)), daemon=True).start()
    try:
        return out.get(timeout=WAIT)
    except queue.Empty:
        pytest.fail(f"request {rid} was not answered within {WAIT:.0f} s")


def test_hover_answered_while_hostile_files_are_open(tmp_path: Path) -> None:
    root = hostile_workspace(tmp_path)
    (root / "ok").mkdir()
    ok = root / "ok" / "config.json"
    ok.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}, indent=1))
    server = RawServer()
    try:
        server.initialize(root.as_uri())
        bad_uri = (root / "big" / "config.json").as_uri()
        for uri, text in ((bad_uri, hostile_config()), (ok.as_uri(), ok.read_text())):
            doc = {"uri": uri, "languageId": "json", "version": 1, "text": text}
            server.send("textDocument/didOpen", {"textDocument": doc}, notify=True)
        pos = {"line": 0, "character": 3}
        rng = {"start": pos, "end": pos}
        server.send("textDocument/hover", {"textDocument": {"uri": bad_uri}, "position": pos})
        server.send(
            "textDocument/codeAction",
            {"textDocument": {"uri": bad_uri}, "range": rng, "context": {"diagnostics": []}},
        )
        rid = server.send(
            "textDocument/hover",
            {"textDocument": {"uri": ok.as_uri()}, "position": {"line": 1, "character": 3}},
        )
        reply = answer(server, rid)
        assert "error" not in reply, reply
    finally:
        server.kill()
