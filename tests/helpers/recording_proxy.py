"""A loopback HTTP proxy that records what companion sends to a real LLM server.

Real servers (llama-cpp-python) do not log request bodies, so tests that must prove what
reached the model put this in between: every request body is recorded, every response is
passed back chunk by chunk as it arrives (streams stay streams), and a client that hangs up
mid-stream is noticed, counted in ``disconnects``, and the upstream connection is closed.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._forward(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self._forward(self.rfile.read(length) if length else b"")

    def _forward(self, body: bytes) -> None:
        owner = self.server.owner
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        index = owner._record(self.command, self.path, parsed)
        up = http.client.HTTPConnection(owner.upstream_host, owner.upstream_port, timeout=600)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        try:
            up.request(self.command, self.path, body=body or None, headers=headers)
            response = up.getresponse()
            self.send_response(response.status)
            for k, v in response.getheaders():
                if k.lower() not in _HOP:
                    self.send_header(k, v)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            while piece := response.read1(65536):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            owner._disconnected(index)
            self.close_connection = True
        finally:
            up.close()  # closing it makes the real server stop generating


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: RecordingProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class RecordingProxy:
    """Forward 127.0.0.1:<port> to `upstream` (a root URL); use as a context manager."""

    def __init__(self, upstream: str) -> None:
        url = urlparse(upstream)
        self.upstream_host, self.upstream_port = url.hostname or "127.0.0.1", url.port or 80
        self.bodies: list[tuple[str, str, Any]] = []
        self.disconnects: list[int] = []
        self._lock = threading.Condition()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """OpenAI base URL through the proxy."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def chat_bodies(self) -> list[Any]:
        """Bodies of the chat-completion requests, in order."""
        with self._lock:
            return [b for m, p, b in self.bodies if m == "POST" and "chat/completions" in p]

    def wait_disconnect(self, timeout: float) -> bool:
        """Block until a client hung up mid-response; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: bool(self.disconnects), timeout=timeout)

    def _record(self, method: str, path: str, body: Any) -> int:
        with self._lock:
            self.bodies.append((method, path, body))
            return len(self.bodies) - 1

    def _disconnected(self, index: int) -> None:
        with self._lock:
            self.disconnects.append(index)
            self._lock.notify_all()

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
