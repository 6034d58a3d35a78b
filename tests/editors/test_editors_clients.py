"""Real editors with our plugins drive the real server and a streamed, cancelled chat.

Headless Neovim (editors/neovim, built-in LSP) and Emacs batch (editors/emacs, eglot) each
attach to a config.json; run the evidence, audit and query commands (the server writes markdown
that the plugin opens); answer a `*.chat.md` through the "Ask companion" code action; stream a
chat turn from a loopback OpenAI-compatible endpoint; then stop a slow second turn and check
that the cancel reached the server and closed the upstream stream.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.editors import CLIENTS, EDITORS, editor_env, finish, make_workspace, run_until
from helpers.openai_server import OpenAIServer, ToolCall, Turn

IN_FILE = "The checkpoint with the higher first loss, a, came first."
FAST = "No: the mean-centred correlation is about zero, so **independent**."
SLOW = " ".join(f"word{i}" for i in range(60))

EDITOR_RUNS = {
    "neovim": (
        "nvim",
        EDITORS / "neovim",
        ["nvim", "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c"],
        f"luafile {CLIENTS / 'nvim_session.lua'}",
    ),
    # No -Q: Debian's site-start puts eglot on the load path.
    "emacs": (
        "emacs",
        EDITORS / "emacs",
        ["emacs", "--batch", "-l"],
        str(CLIENTS / "emacs_session.el"),
    ),
}


@pytest.mark.parametrize("editor", sorted(EDITOR_RUNS))
def test_editor_plugin_query_chat_and_stop(editor: str, tmp_path: Path) -> None:
    binary, plugin, argv, script_arg = EDITOR_RUNS[editor]
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} missing (make system-deps)")
    ws = make_workspace(tmp_path / "ws")
    out, go = tmp_path / "out.json", tmp_path / "go"
    script = [
        Turn(text=IN_FILE, chunks=3),
        # The first chat turn calls a read-only tool before answering.
        Turn(tool_calls=[ToolCall("audit_query", '{"verdict": "derived"}')]),
        Turn(text=FAST, chunks=4),
        Turn(text=SLOW, chunks=60, delay=0.25),
    ]
    with OpenAIServer(script, model="test-model") as srv:
        env = editor_env(
            tmp_path, PLUGIN=str(plugin), LLM_BASE_URL=srv.base_url, WS=str(ws), OUT=str(out),
            GO=str(go),
        )  # fmt: skip
        proc, alive = run_until([*argv, script_arg], env, lambda: bool(srv.disconnects))
        go.touch()
        result = finish(proc, out)
        requests = srv.chat_requests()

    assert "scratch" in str(result["evidence_text"]).lower()  # first loss ≈ ln V
    assert "DERIVED" in str(result["audit_text"]).upper()
    assert str(result["query_file"]).endswith(".md")
    query = str(result["query_text"])
    assert "audit.compare" in query and "derived" in query.lower()  # the audit was recorded

    in_file = str(result["chat_file_text"])  # the code action wrote the answer into the file
    assert in_file.startswith("## You\n\nWhich checkpoint came first?\n")
    assert IN_FILE in in_file.split("## companion", 1)[1]

    first = str(result["chat_after_first"])
    assert int(result["deltas"]) >= 2  # the answer streamed in pieces
    assert "## You\n\nWas B derived from A?\n\n## Companion\n\n" + FAST in first
    footer = first.split(FAST, 1)[1]
    assert "tokens" in footer and re.search(r"tools: audit[._]query", footer)  # usage, tools
    assert result["conversation"]

    # Stop keeps the partial answer; the server acknowledged the cancel and closed the upstream
    # HTTP stream while the editor (and so the server) was still running.
    stopped = str(result["stopped_text"])
    assert stopped.endswith("_[stopped]_\n\n")
    partial = stopped.split("And the second model?\n\n## Companion\n\n", 1)[1]
    assert partial.startswith("word0") and SLOW not in partial
    if editor == "neovim":
        assert result["cancel_acknowledged"] is True  # Neovim mutes RequestCancelled replies
    else:
        assert result["cancel_reply"] == -32800  # RequestCancelled
    assert alive, "the upstream stream closed only when the editor exited"
    assert result["final_text"] == stopped  # nothing was appended after Stop

    assert len(requests) == 4
    # The open config.json went along as context (the server quotes it into the prompt).
    assert "LlamaForCausalLM" in str(requests[1].body["messages"])
    assert "audit.compare" in str(requests[2].body["messages"])  # the tool result went back
    second = [str(m.get("content")) for m in requests[3].body["messages"]]
    assert any("Was B derived from A?" in c for c in second)  # the conversation continued
    assert requests[1].body["model"] == "test-model"


def test_emacs_package_byte_compiles_without_warnings(tmp_path: Path) -> None:
    if shutil.which("emacs") is None:
        pytest.skip("emacs missing (make system-deps)")
    shutil.copy(EDITORS / "emacs" / "companion.el", tmp_path)
    strict = "(setq byte-compile-error-on-warn t)"
    source = str(tmp_path / "companion.el")
    proc = subprocess.run(
        [
            "emacs",
            "--batch",
            "--eval",
            strict,
            "-L",
            str(tmp_path),
            "-f",
            "batch-byte-compile",
            source,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and (tmp_path / "companion.elc").exists(), proc.stderr
