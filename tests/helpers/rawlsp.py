"""A minimal raw JSON-RPC-over-stdio peer, for sending bytes no well-behaved client would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from helpers.lsp import SERVER_COMMAND


class RawServer:
    """`companion serve` as a subprocess with framed reads and writes and bounded waits."""

    def __init__(
        self,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ):
        self.proc = subprocess.Popen(
            (command or SERVER_COMMAND) + (extra_args or []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.next_id = 1

    def send_bytes(self, body: bytes) -> None:
        """Send one framed message body, however malformed."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send(self, method: str, params: Any = None, notify: bool = False) -> int | None:
        """Send a request (returns its id) or a notification."""
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        msg_id = None
        if not notify:
            msg_id = self.next_id
            self.next_id += 1
            msg["id"] = msg_id
        self.send_bytes(json.dumps(msg).encode())
        return msg_id

    def read(self) -> dict[str, Any]:
        """Read one framed message from stdout."""
        assert self.proc.stdout is not None
        length = 0
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise EOFError("server closed stdout")
            if line in (b"\r\n", b"\n"):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))  # type: ignore[no-any-return]

    def response(self, msg_id: int | None, limit: int = 200) -> dict[str, Any]:
        """Read until the response to `msg_id` (skipping notifications); bounded."""
        for _ in range(limit):
            msg = self.read()
            if msg.get("id") == msg_id and "method" not in msg:
                return msg
        raise AssertionError(f"no response to {msg_id} in {limit} messages")

    def initialize(self, root_uri: str | None = None) -> dict[str, Any]:
        """Run the initialize handshake."""
        rid = self.send("initialize", {"processId": None, "rootUri": root_uri, "capabilities": {}})
        reply = self.response(rid)
        self.send("initialized", {}, notify=True)
        return reply

    def close_stdin_and_wait(self, timeout: float = 5.0) -> float:
        """Close stdin (the client vanished) and return seconds until the process exited."""
        assert self.proc.stdin is not None
        start = time.monotonic()
        self.proc.stdin.close()
        self.proc.wait(timeout=timeout)
        return time.monotonic() - start

    def kill(self) -> None:
        """Stop the process if still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m companion ARGS` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "companion", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
