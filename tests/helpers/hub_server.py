"""A loopback HTTP server that mimics the hub's resolve URLs, with faults on demand.

`/{org}/{name}/resolve/{rev}/{file}` answers 302 to `/cdn/{sha256}` (with X-Linked-Etag, as
the hub does); `/cdn/...` serves bytes with Range and an ETag. `faults` changes behaviour:
"norange", "ignored", "short", "reset", "etag", "trickle", "tamper" (flip each range's first
byte, same ETag), "429" (with `retry_after`), "401", "403", "404", "loop" (the resolve URL
redirects to itself), "loop-get" (for GETs only), "gzip" (range answers are `encoded`, sent
as Content-Encoding: gzip, gzip), "stall" (the first range stops half way until `gate` is
set) and "drip" (range bodies come a byte every 20 ms, well inside any read timeout, for at
most 10 s or until the client hangs up; then the connection is cut); `claim` makes it report
that ETag for every file (a server forging another file's identity), `head_size` makes every
HEAD and Content-Range claim that size (the bodies are the true bytes). The server counts every
body byte it sends and keeps each request's Authorization header, so tests observe traffic
from the outside.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RESOLVE = re.compile(r"^/([\w.-]+)/([\w.-]+)/resolve/([\w.-]+)/(.+)$")


@dataclass
class Hub:
    """Served repositories and the fault switches (shared with the handler threads)."""

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    faults: set[str] = field(default_factory=set)
    sent: int = 0
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)  # each request's Authorization ("" if none)
    claim: str = ""  # when set, the ETag reported for every file
    retry_after: str = "0"  # the Retry-After of the "429" fault
    encoded: bytes = b""  # the body of every range answer under the "gzip" fault
    head_size: int | None = None  # when set, the size HEADs and Content-Ranges claim
    gate: threading.Event = field(default_factory=threading.Event)  # releases a "stall"
    lock: threading.Lock = field(default_factory=threading.Lock)
    once: set[str] = field(default_factory=set)  # faults already fired once
    url: str = ""

    def blobs(self) -> dict[str, bytes]:
        """Every file by its sha256."""
        return {hashlib.sha256(b).hexdigest(): b for r in self.repos.values() for b in r.values()}

    def fire_once(self, fault: str) -> bool:
        """True the first time a one-shot fault is asked for."""
        with self.lock:
            if fault in self.faults and fault not in self.once:
                self.once.add(fault)
                return True
        return False


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self.serve(head=True)

        def do_GET(self) -> None:
            self.serve(head=False)

        def serve(self, head: bool) -> None:
            with hub.lock:
                hub.requests.append((self.command, self.path, self.headers.get("Range", "")))
                hub.auth.append(self.headers.get("Authorization", ""))
            for code in ("401", "403", "404"):
                if code in hub.faults:
                    return self.empty(int(code))
            loop = "loop" in hub.faults or ("loop-get" in hub.faults and not head)
            if loop and _RESOLVE.match(self.path):
                return self.empty(302, {"Location": self.path})
            if m := _RESOLVE.match(self.path):
                return self.resolve(*m.groups())
            if self.path.startswith("/cdn/"):
                return self.cdn(self.path[5:], head)
            self.empty(404)

        def empty(self, code: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def resolve(self, org: str, name: str, rev: str, file: str) -> None:
            data = hub.repos.get(f"{org}/{name}", {}).get(file)
            if data is None:
                return self.empty(404)
            sha = hashlib.sha256(data).hexdigest()
            changed = "etag" in hub.faults and self.command == "GET"
            tag = (hub.claim or sha) + ("-changed" if changed else "")
            self.empty(302, {"Location": f"/cdn/{sha}", "X-Linked-Etag": f'"{tag}"'})

        def cdn(self, sha: str, head: bool) -> None:
            data = hub.blobs().get(sha)
            if data is None:
                return self.empty(404)
            if not head and hub.fire_once("429"):
                return self.empty(429, {"Retry-After": hub.retry_after})
            tag = (hub.claim or sha) + ("-changed" if "etag" in hub.faults and not head else "")
            m = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            whole = head or m is None or hub.faults & {"norange", "ignored"}
            if whole:
                self.send_response(200)
                ranges = "bytes" if "ignored" in hub.faults or not hub.faults else "none"
                self.send_header("Accept-Ranges", ranges)
                body = data
            else:
                assert m is not None
                a, b = int(m.group(1)), min(int(m.group(2)), len(data) - 1)
                body = data[a : b + 1]
                if "tamper" in hub.faults and body:  # other bytes under the same ETag
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(206)
                total = len(data) if hub.head_size is None else hub.head_size
                self.send_header("Content-Range", f"bytes {a}-{b}/{total}")
                if "gzip" in hub.faults:
                    return self.encoded(tag)
            length = len(body) // 2 if "short" in hub.faults and not whole else len(body)
            if head and hub.head_size is not None:
                length = hub.head_size
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", f'"{tag}"')
            self.end_headers()
            if not head:
                self.body(body[:length], whole)

        def encoded(self, tag: str) -> None:
            """`hub.encoded` as the body, gzip-encoded twice, framed by closing the connection."""
            self.send_header("Content-Encoding", "gzip, gzip")
            self.send_header("ETag", f'"{tag}"')
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(hub.encoded)
            self.close_connection = True

        def drip(self, body: bytes) -> None:
            """A byte every 20 ms: bounded (500 bytes, 10 s), stopped by a client hang-up."""
            try:
                for i in range(min(len(body), 500)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    with hub.lock:
                        hub.sent += 1
                    time.sleep(0.02)
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True

        def body(self, body: bytes, whole: bool) -> None:
            if "drip" in hub.faults and not whole:
                return self.drip(body)
            cut = (
                len(body) // 2
                if not whole and len(body) > 1024 and hub.fire_once("reset")
                else None
            )
            trickle = "trickle" in hub.faults
            try:
                step = 1 if trickle else 1 << 16
                if not whole and len(body) > 1 and hub.fire_once("stall"):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    with hub.lock:
                        hub.sent += len(body) // 2
                    hub.gate.wait(10)  # bounded: the test sets it
                    body, cut = body[len(body) // 2 :], None
                for i in range(0, len(body) if cut is None else cut, step):
                    self.wfile.write(body[i : i + step])
                    with hub.lock:
                        hub.sent += len(body[i : i + step])
                    if trickle:
                        self.wfile.flush()
                        time.sleep(0.5)
                        if i >= 4:  # bounded: give up after a few bytes
                            break
                if cut is not None:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True

    return Handler


@contextmanager
def serve(hub: Hub) -> Iterator[Hub]:
    """Run the hub on 127.0.0.1 (an ephemeral port) for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
