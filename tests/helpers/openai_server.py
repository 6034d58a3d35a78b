"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It speaks the real wire protocol, so the real ``openai`` SDK (and any editor driving the
real companion server) can talk to it. Nothing about our own client is mocked.

Endpoints
---------
- ``POST /v1/chat/completions``: non-streaming JSON, or SSE when ``"stream": true``
  (``data: {chunk}`` lines, then ``data: [DONE]``). Tool calls stream as ``delta.tool_calls``
  fragments. When ``stream_options.include_usage`` is true a final chunk with
  ``choices: []`` and ``usage`` is sent before ``[DONE]``.
- ``GET /v1/models``: model list; each entry carries ``max_model_len`` (like vLLM) when
  ``max_model_len`` is set.
- ``GET /props``: llama.cpp style ``{"default_generation_settings": {"n_ctx": N}}`` when
  ``n_ctx`` is set, else 404.
- ``POST /api/show``: Ollama style ``{"parameters": "num_ctx N", "model_info": {...}}`` when
  ``num_ctx`` is set, else 404.

In-process use
--------------
::

    from helpers.openai_server import OpenAIServer, Turn, ToolCall

    script = [
        Turn(tool_calls=[ToolCall("evidence.summarize", '{"paths": ["a.log"]}')]),
        Turn(chunks=["The ", "answer."], delay=0.01),
    ]
    with OpenAIServer(script, model="m", max_model_len=8192) as srv:
        srv.base_url          # "http://127.0.0.1:PORT/v1"  (pass as base_url to the SDK)
        srv.root_url          # "http://127.0.0.1:PORT"
        ...                   # drive a client
        srv.requests          # list[RecordedRequest]: every request (method, path, headers, body)
        srv.chat_requests()   # only the POST /v1/chat/completions ones
        srv.disconnects       # indices (into srv.requests) of streams the client dropped mid-way
        srv.wait_disconnect(timeout=5.0) -> bool
        srv.completed         # indices of chat requests whose reply was written completely
        srv.set_script([...]) # replace the remaining turns

Each POST /v1/chat/completions consumes the next ``Turn`` of the script. When the script is
exhausted the last turn repeats (``repeat_last=True``, the default) or the server answers 500.

``Turn`` fields (all optional):
  ``text`` (split into ``chunks`` pieces when ``chunks`` is an int) or ``chunks`` (list of
  strings), ``delay`` (seconds before each streamed chunk), ``tool_calls`` (list of
  ``ToolCall(name, arguments_json_text, id=None)``; arguments are sent verbatim, so invalid
  JSON is possible), ``status`` (HTTP status; non-200 sends an OpenAI-style error body),
  ``retry_after`` (seconds, sent as the ``retry-after`` header), ``headers`` (extra headers),
  ``hang`` (seconds to wait before sending anything: use it for client timeouts),
  ``drop_after`` (close the connection without finishing after N content chunks),
  ``malformed_after`` (after N content chunks send ``data: {not json`` and finish),
  ``usage`` (``(prompt_tokens, completion_tokens)``; default: prompt = total characters of
  the request messages // 4, completion = number of content chunks), ``finish_reason``,
  ``error_message`` (message of the error body for non-200 statuses; ``{auth}`` in it is
  replaced by the request's Authorization header, to test that clients redact echoed keys),
  ``error_code`` (``code`` of that error body, e.g. ``context_length_exceeded``).

Scripted faults of a stream that began with 200 (``Turn`` fields):
  ``endless`` (repeat the content chunks until the client hangs up; bounded by
  ``ENDLESS_MAX_S``), ``stream_error`` (after the content chunks send
  ``data: {"error": {...}}`` with this message, then end without ``[DONE]``),
  ``end_early`` (end the body cleanly after the content chunks: no finish_reason, no
  ``[DONE]``); a non-streamed request for such a turn gets a body cut half-way.
  ``srv.sent_bytes[i]`` counts the body bytes written for request ``i``.

Server-wide faults (``OpenAIServer`` arguments):
  ``context_window=N`` refuses, like llama.cpp's server, any chat request whose prompt
  (characters // 4) plus ``max_tokens`` exceeds N: HTTP 400, ``code:
  context_length_exceeded``, "Requested tokens (R) exceed context window of N". With
  ``silent_stream_overflow=True`` a streamed request over the window gets what
  llama-cpp-python's server really sends: 200 and an empty event stream (the 400 only comes
  for non-streamed requests).
  ``discovery="trickle"`` makes ``GET /v1/models`` and ``/props`` send a 200 header and then
  one byte every 0.2 s (never finishing); ``discovery="hang"`` sends nothing at all. Both
  stop when the client hangs up, or after ``ENDLESS_MAX_S``.

Standalone use
--------------
::

    python tests/helpers/openai_server.py --port 0 --reply "text" [--chunks N] [--delay S]
        [--model M] [--max-model-len N] [--n-ctx N] [--num-ctx N] [--lifetime S]

prints the base URL (``http://127.0.0.1:PORT/v1``) as the first stdout line, then serves
every chat request with the reply (split into N chunks, S seconds apart) until it is
terminated, its stdin reaches EOF when ``--exit-on-stdin-eof`` is given, or ``--lifetime``
seconds (default 900) have passed. One JSON line per recorded request is appended to
``--log FILE`` when given.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OpenAIServer", "RecordedRequest", "ToolCall", "Turn"]

_MAX_BODY = 8 * 1024 * 1024
# Every scripted "endless" behaviour still ends: the test server's own loops are bounded.
ENDLESS_MAX_S = 120.0


@dataclass
class ToolCall:
    """One scripted tool call: function name and its raw JSON-text arguments."""

    name: str
    arguments: str
    id: str | None = None


@dataclass
class Turn:
    """One scripted reply to a chat-completions request."""

    text: str = ""
    chunks: list[str] | int | None = None
    delay: float = 0.0
    tool_calls: list[ToolCall] = field(default_factory=list)
    status: int = 200
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0
    drop_after: int | None = None
    malformed_after: int | None = None
    usage: tuple[int, int] | None = None
    finish_reason: str | None = None
    error_message: str | None = None
    error_code: str | None = None
    endless: bool = False
    stream_error: str | None = None
    end_early: bool = False

    def pieces(self) -> list[str]:
        """Content chunks to send, in order."""
        if isinstance(self.chunks, list):
            return list(self.chunks)
        if not self.text:
            return []
        n = max(1, min(self.chunks or 1, len(self.text)))
        size = -(-len(self.text) // n)
        return [self.text[i : i + size] for i in range(0, len(self.text), size)]


@dataclass
class RecordedRequest:
    """A request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    time: float


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Like real inference servers: without TCP_NODELAY, small SSE chunks on a reused
    # keep-alive connection stall ~40 ms on the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr access log
        return

    # -- plumbing -------------------------------------------------------------------------

    def _record(self) -> tuple[int, RecordedRequest]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(min(length, _MAX_BODY)) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw,
            time=time.monotonic(),
        )
        return self.server.owner._add_request(rec), rec

    def _json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _client_gone(self, wait: float) -> bool:
        """Wait up to `wait` seconds; True if the peer closed its side meanwhile."""
        sock: socket.socket = self.connection
        deadline = time.monotonic() + wait
        while True:
            left = max(0.0, deadline - time.monotonic())
            try:
                readable, _, _ = select.select([sock], [], [], left)
            except (OSError, ValueError):
                return True
            if readable:
                try:
                    peek = sock.recv(1, socket.MSG_PEEK)
                except OSError:
                    return True
                if not peek:
                    return True
                # Unexpected bytes while streaming (pipelining): treat as still connected.
                time.sleep(min(left, 0.01))
            if time.monotonic() >= deadline:
                return False

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        self.server.owner._add_sent(getattr(self, "_index", -1), len(data))

    def _discovery_fault(self, kind: str) -> None:
        """Never finish a discovery probe: trickle a 200 body, or send nothing at all."""
        deadline = time.monotonic() + ENDLESS_MAX_S
        if kind == "trickle":
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
        try:
            while time.monotonic() < deadline and not self._client_gone(0.2):
                if kind == "trickle":
                    self._chunk(b" ")
        except OSError:
            pass
        self.close_connection = True

    def _empty_stream(self, index: int) -> None:
        """A 200 event stream that ends at once: no chunk, no finish_reason, no [DONE]."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self._chunk(b"")
        self.server.owner._mark_completed(index)

    def _too_long(self, body: dict[str, Any]) -> int | None:
        """Requested tokens (prompt chars // 4 + max_tokens) when over the context window."""
        window = self.server.owner.context_window
        if window is None:
            return None
        chars = len(json.dumps(body.get("messages") or [])) + len(
            json.dumps(body.get("tools") or [])
        )
        requested = chars // 4 + int(body.get("max_tokens") or 0)
        return requested if requested > window else None

    # -- routes ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._record()
        owner = self.server.owner
        path = self.path.split("?", 1)[0].rstrip("/")
        if owner.discovery is not None and path in ("/v1/models", "/props"):
            self._discovery_fault(owner.discovery)
        elif path == "/v1/models":
            entry: dict[str, Any] = {
                "id": owner.model,
                "object": "model",
                "created": 0,
                "owned_by": "companion-tests",
            }
            if owner.max_model_len is not None:
                entry["max_model_len"] = owner.max_model_len
            self._json(200, {"object": "list", "data": [entry]})
        elif path == "/props" and owner.n_ctx is not None:
            self._json(200, {"default_generation_settings": {"n_ctx": owner.n_ctx}})
        else:
            self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    def do_POST(self) -> None:
        index, rec = self._record()
        self._index = index
        owner = self.server.owner
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/api/show" and owner.num_ctx is not None:
            self._json(
                200,
                {
                    "parameters": f"num_ctx {owner.num_ctx}",
                    "model_info": {
                        "general.architecture": "llama",
                        "llama.context_length": owner.num_ctx * 4,
                    },
                },
            )
            return
        if path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        requested = self._too_long(rec.body if isinstance(rec.body, dict) else {})
        if requested is not None and owner.silent_stream_overflow and rec.body.get("stream"):
            self._empty_stream(index)  # llama-cpp-python: 200, then nothing at all
            return
        if requested is not None:
            message = (
                f"Requested tokens ({requested}) exceed context window of {owner.context_window}"
            )
            error = {"message": message, "type": "invalid_request_error"}
            self._json(400, {"error": {**error, "code": "context_length_exceeded"}})
            owner._mark_completed(index)
            return
        turn = owner._next_turn()
        if turn is None:
            self._json(500, {"error": {"message": "script exhausted", "type": "server_error"}})
            return
        if turn.hang and self._client_gone(turn.hang):
            owner._mark_disconnect(index)
            self.close_connection = True
            return
        if turn.status != 200:
            extra = dict(turn.headers)
            if turn.retry_after is not None:
                extra["retry-after"] = f"{turn.retry_after:g}"
            message = turn.error_message or f"scripted status {turn.status}"
            message = message.replace("{auth}", rec.headers.get("authorization", ""))
            error: dict[str, Any] = {"message": message, "type": "scripted"}
            if turn.error_code:
                error["code"] = turn.error_code
            self._json(turn.status, {"error": error}, extra)
            owner._mark_completed(index)
            return
        body = rec.body if isinstance(rec.body, dict) else {}
        usage = _usage(turn, body)
        if body.get("stream"):
            self._stream(index, turn, body, usage)
        else:
            self._whole(index, turn, usage)

    def _whole(self, index: int, turn: Turn, usage: dict[str, int]) -> None:
        owner = self.server.owner
        if turn.end_early or turn.stream_error is not None:
            # the non-streamed face of a failing server: the body stops half-way
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "1000")
            self.end_headers()
            self.wfile.write(b'{"id": "chatcmpl-broken", "choices": [')
            self.wfile.flush()
            self.close_connection = True
            return
        message: dict[str, Any] = {"role": "assistant", "content": "".join(turn.pieces())}
        if turn.tool_calls:
            message["tool_calls"] = [
                {
                    "id": tc.id or f"call_{i}",
                    "type": "function",
                    "function": {"name": tc.name, "arguments": tc.arguments},
                }
                for i, tc in enumerate(turn.tool_calls)
            ]
            message["content"] = message["content"] or None
        finish = turn.finish_reason or ("tool_calls" if turn.tool_calls else "stop")
        self._json(
            200,
            {
                "id": f"chatcmpl-{index}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": owner.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            },
            turn.headers,
        )
        owner._mark_completed(index)

    def _stream(self, index: int, turn: Turn, body: dict[str, Any], usage: dict[str, int]) -> None:
        owner = self.server.owner
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        for k, v in turn.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()
        base = {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": owner.model,
        }

        def event(choices: list[dict[str, Any]], **more: Any) -> bytes:
            return b"data: " + json.dumps({**base, "choices": choices, **more}).encode() + b"\n\n"

        try:
            self._chunk(event([{"index": 0, "delta": {"role": "assistant", "content": ""}}]))
            for n, piece in enumerate(_pieces(turn)):
                if turn.drop_after is not None and n >= turn.drop_after:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if turn.malformed_after is not None and n >= turn.malformed_after:
                    self._chunk(b'data: {"id": "broken", "choices": [\n\n')
                    break
                if turn.delay and self._client_gone(turn.delay):
                    owner._mark_disconnect(index)
                    self.close_connection = True
                    return
                delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                self._chunk(event([delta]))
            else:
                if turn.stream_error is not None or turn.end_early:
                    self._end_badly(index, turn, event)
                    return
                for i, tc in enumerate(turn.tool_calls):
                    self._chunk(event([_tool_delta(i, tc)]))
                    args = tc.arguments
                    step = max(1, -(-len(args) // 3))
                    for j in range(0, len(args), step):
                        frag = {
                            "index": 0,
                            "delta": {
                                "tool_calls": [
                                    {"index": i, "function": {"arguments": args[j : j + step]}}
                                ]
                            },
                        }
                        self._chunk(event([frag]))
                finish = turn.finish_reason or ("tool_calls" if turn.tool_calls else "stop")
                self._chunk(event([{"index": 0, "delta": {}, "finish_reason": finish}]))
                opts = body.get("stream_options") or {}
                if isinstance(opts, dict) and opts.get("include_usage"):
                    self._chunk(event([], usage=usage))
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
            owner._mark_completed(index)
        except (BrokenPipeError, ConnectionResetError, OSError):
            owner._mark_disconnect(index)
            self.close_connection = True

    def _end_badly(self, index: int, turn: Turn, event: Any) -> None:
        """End a 200 stream without finishing it: an error object, or just the end."""
        if turn.stream_error is not None:
            error = {"message": turn.stream_error, "type": "server_error", "code": 500}
            self._chunk(b"data: " + json.dumps({"error": error}).encode() + b"\n\n")
        self._chunk(b"")
        self.server.owner._mark_completed(index)


def _pieces(turn: Turn) -> Any:
    """The content chunks; an endless turn repeats them (for at most ENDLESS_MAX_S)."""
    pieces = turn.pieces()
    yield from pieces
    deadline = time.monotonic() + ENDLESS_MAX_S
    while turn.endless and pieces and time.monotonic() < deadline:
        yield from pieces


def _tool_delta(i: int, tc: ToolCall) -> dict[str, Any]:
    return {
        "index": 0,
        "delta": {
            "tool_calls": [
                {
                    "index": i,
                    "id": tc.id or f"call_{i}",
                    "type": "function",
                    "function": {"name": tc.name, "arguments": ""},
                }
            ]
        },
    }


def _usage(turn: Turn, body: dict[str, Any]) -> dict[str, int]:
    if turn.usage is not None:
        prompt, completion = turn.usage
    else:
        chars = 0
        for m in body.get("messages") or []:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                chars += len(content)
        prompt = chars // 4
        completion = len(turn.pieces()) + len(turn.tool_calls)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: OpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (reset, broken pipe) is normal here; other errors print."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class OpenAIServer:
    """Scripted OpenAI-compatible server; use as a context manager."""

    def __init__(
        self,
        script: list[Turn] | None = None,
        *,
        model: str = "test-model",
        max_model_len: int | None = None,
        n_ctx: int | None = None,
        num_ctx: int | None = None,
        repeat_last: bool = True,
        port: int = 0,
        log_path: str | None = None,
        context_window: int | None = None,
        discovery: str | None = None,
        silent_stream_overflow: bool = False,
    ) -> None:
        self.model = model
        self.max_model_len = max_model_len
        self.n_ctx = n_ctx
        self.num_ctx = num_ctx
        self.repeat_last = repeat_last
        self.context_window = context_window
        self.discovery = discovery
        self.silent_stream_overflow = silent_stream_overflow
        self.sent_bytes: dict[int, int] = {}
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[int] = []
        self.completed: list[int] = []
        self._script: list[Turn] = list(script or [Turn(text="ok")])
        self._last: Turn | None = None
        self._lock = threading.Condition()
        self._log_path = log_path
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._httpd.server_address[1])

    @property
    def root_url(self) -> str:
        """Server root, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. http://127.0.0.1:PORT/v1."""
        return self.root_url + "/v1"

    def start(self) -> OpenAIServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_script(self, script: list[Turn]) -> None:
        """Replace the remaining turns."""
        with self._lock:
            self._script = list(script)

    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded POST /v1/chat/completions requests, in order."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "POST" and r.path.rstrip("/").endswith("/chat/completions")
            ]

    def wait_disconnect(self, timeout: float = 5.0) -> bool:
        """Block until some stream was dropped by the client; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: bool(self.disconnects), timeout=timeout)

    def wait_requests(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least n chat requests arrived; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.chat_requests()) >= n, timeout=timeout)

    # -- called from handler threads ------------------------------------------------------

    def _add_request(self, rec: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(rec)
            self._lock.notify_all()
            index = len(self.requests) - 1
        if self._log_path:
            line = {"method": rec.method, "path": rec.path, "headers": rec.headers}
            line["body"] = rec.body
            with open(self._log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        return index

    def _next_turn(self) -> Turn | None:
        with self._lock:
            if self._script:
                self._last = self._script.pop(0)
                return self._last
            return self._last if self.repeat_last else None

    def _add_sent(self, index: int, n: int) -> None:
        with self._lock:
            self.sent_bytes[index] = self.sent_bytes.get(index, 0) + n

    def _mark_disconnect(self, index: int) -> None:
        with self._lock:
            self.disconnects.append(index)
            self._lock.notify_all()

    def _mark_completed(self, index: int) -> None:
        with self._lock:
            self.completed.append(index)
            self._lock.notify_all()


def main(argv: list[str] | None = None) -> int:
    """Run the server standalone; print the base URL on the first stdout line."""
    p = argparse.ArgumentParser(description="Scripted OpenAI-compatible server (tests).")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--reply", default="Hello from the test endpoint.")
    p.add_argument("--chunks", type=int, default=4)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--model", default="test-model")
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--n-ctx", type=int, default=None)
    p.add_argument("--num-ctx", type=int, default=None)
    p.add_argument("--lifetime", type=float, default=900.0)
    p.add_argument("--log", default=None)
    p.add_argument("--exit-on-stdin-eof", action="store_true")
    ns = p.parse_args(argv)
    srv = OpenAIServer(
        [Turn(text=ns.reply, chunks=ns.chunks, delay=ns.delay)],
        model=ns.model,
        max_model_len=ns.max_model_len,
        n_ctx=ns.n_ctx,
        num_ctx=ns.num_ctx,
        port=ns.port,
        log_path=ns.log,
    )
    srv.start()
    print(srv.base_url, flush=True)
    done = threading.Event()
    if ns.exit_on_stdin_eof:

        def watch_stdin() -> None:
            while sys.stdin.buffer.read(4096):
                pass
            done.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        done.wait(timeout=ns.lifetime)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
