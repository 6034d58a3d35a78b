"""Hostile traffic and vanishing clients: the server answers with errors and never dies."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.rawlsp import RawServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server():
    """A raw server, initialized."""
    s = RawServer()
    s.initialize()
    yield s
    s.kill()


def scan_ok(s: RawServer, path: Path) -> dict[str, object]:
    """A valid request still works."""
    rid = s.send(
        "workspace/executeCommand",
        {"command": "companion.workspace.scan", "arguments": [{"paths": [str(path)]}]},
    )
    reply = s.response(rid)
    assert "result" in reply, reply
    return reply["result"]  # type: ignore[no-any-return]


def test_malformed_json_rpc_and_wrong_params(server: RawServer, tmp_path: Path) -> None:
    server.send_bytes(b"{this is not json")
    server.send_bytes(b'{"jsonrpc": "2.0", "id": 99, "method": 42}')
    server.send_bytes(b"[1, 2, 3]")
    rid = server.send("textDocument/hover", {"textDocument": 5, "position": "top"})
    reply = server.response(rid)
    assert reply["error"]["code"] in (-32602, -32603)
    rid = server.send("workspace/executeCommand", {"command": 7})
    assert "error" in server.response(rid)
    rid = server.send("unknown/method", {})
    assert server.response(rid)["error"]["code"] == -32601
    assert scan_ok(server, tmp_path)["files_seen"] == 0


def test_unreadable_files_and_symlink_loops(server: RawServer, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    (tmp_path / "self").symlink_to(tmp_path / "self")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    secret = tmp_path / "locked"
    secret.mkdir()
    (secret / "config.json").write_text('{"model_type": "llama"}')
    unreadable = tmp_path / "a" / "config.json"
    unreadable.write_text('{"model_type": "llama"}')
    secret.chmod(0)
    unreadable.chmod(0)
    try:
        result = scan_ok(server, tmp_path)
    finally:
        secret.chmod(0o755)
        unreadable.chmod(0o644)
    reasons = " ".join(p["reason"] for p in result["problems"])  # type: ignore[index, union-attr]
    assert "symlink" in reasons
    if os.geteuid() != 0:  # root can read anything; permission errors only show for users
        assert "Permission denied" in reasons


def test_client_vanishes_server_exits_within_one_second() -> None:
    s = RawServer()
    s.initialize()
    elapsed = s.close_stdin_and_wait()
    assert s.proc.returncode == 0
    assert elapsed < 1.0, f"server took {elapsed:.2f}s to exit"


def test_stdout_carries_only_lsp_traffic(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    s = RawServer(["--log-file", str(log)])
    s.initialize()
    s.send("shutdown")
    s.send("exit", notify=True)
    assert s.proc.wait(timeout=2) == 0  # exit stops the server even with stdin still open
    out = s.proc.stdout.read() if s.proc.stdout else b""
    assert out == b"" or out.startswith(b"Content-Length")
    text = log.read_text()
    assert "serving on stdio" in text and "exiting" in text


def test_tcp_binds_loopback_only() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "companion", "serve", "--tcp", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not listen"
                time.sleep(0.1)
        body = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}'
        conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        conn.settimeout(10)
        assert b'"companion"' in conn.recv(65536)
        conn.close()
        listening = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout
        if listening:  # ss is present: the only listener is on loopback
            assert "127.0.0.1" in listening and "0.0.0.0" not in listening
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_server_start_imports_no_heavy_engines() -> None:
    """Cold start stays fast: engines load numpy/scipy/openai only when first used."""
    code = (
        "import sys; from companion.server import build_server; build_server(); "
        "print(' '.join(m for m in ('numpy', 'scipy', 'matplotlib', 'openai', 'tiktoken') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
