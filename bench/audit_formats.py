"""The benches' checkpoint writers and the GGUF and remote rows of bench/audit_throughput.py.

`write_bf16` writes a bf16 safetensors file tensor by tensor (the benches' pairs).
`to_gguf` writes a GGUF copy of a safetensors checkpoint (F16, llama.cpp names, arch llama,
so Q/K go through the reader's rotary re-ordering as in a real conversion), tensor by tensor
with gguf's writer (memory stays flat). `serve_files` serves a folder on 127.0.0.1 with HEAD,
Range (206) and an ETag, so the remote row measures companion's range client against a
loopback server: the ceiling is the server's rate, not a network's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)\.weight$")
_TOP = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_BLOCK = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def write_bf16(
    path: Path, layout: list[tuple[str, tuple[int, ...]]], noise: float, seed: int = 0
) -> Path:
    """One bf16 safetensors file, tensor by tensor (memory stays flat): N(0, 0.02) weights,
    gains near one, plus `noise` times that spread for B."""
    import struct

    import ml_dtypes  # here, not at the top: each timed child imports this module first

    path.parent.mkdir(parents=True, exist_ok=True)
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in layout:
        nbytes = int(np.prod(shape)) * 2
        header[name] = {
            "dtype": "BF16",
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob)
        for k, (_, shape) in enumerate(layout):
            rng = np.random.default_rng([seed, k])
            t = rng.standard_normal(shape, dtype=np.float32) * 0.02
            if len(shape) == 1:
                t += 1.0
            if noise:
                t += (
                    noise
                    * 0.02
                    * np.random.default_rng([seed + 1, k]).standard_normal(shape, dtype=np.float32)
                )
            fh.write(t.astype(ml_dtypes.bfloat16).tobytes())
    return path


def gguf_name(name: str) -> str:
    """The llama.cpp name of a Hugging Face tensor name (others kept as they are)."""
    if name in _TOP:
        return _TOP[name]
    m = _LAYER.match(name)
    if m and m.group(2) in _BLOCK:
        return f"blk.{m.group(1)}.{_BLOCK[m.group(2)]}.weight"
    return name


def to_gguf(src: Path, dst: Path, heads: int = 16) -> Path:
    """Write `src` (safetensors) as an F16 GGUF at `dst`, streamed tensor by tensor."""
    import gguf

    from companion.audit.safetensors import SafetensorsFile, decode

    f = SafetensorsFile(src)
    try:
        names = sorted(f.tensors, key=lambda n: f.tensors[n].begin)
        layers = {int(m.group(1)) for n in names if (m := _LAYER.match(n))}
        writer = gguf.GGUFWriter(dst, "llama")
        writer.add_block_count(len(layers))
        writer.add_head_count(heads)
        writer.add_head_count_kv(heads)
        for n in names:
            info = f.tensors[n]
            writer.add_tensor_info(gguf_name(n), info.shape, np.dtype(np.float16), info.numel * 2)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for n in names:
            values = decode(f.read(n), np.float32).astype(np.float16)
            writer.write_tensor_data(values.reshape(f.tensors[n].shape))
        writer.close()
    finally:
        f.close()
    return dst


def _handler(root: Path) -> type[BaseHTTPRequestHandler]:
    """Files under `root` by path: HEAD, GET with one Range, an ETag from size and mtime."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self.serve(head=True)

        def do_GET(self) -> None:
            self.serve(head=False)

        def serve(self, head: bool) -> None:
            path = (root / self.path.lstrip("/")).resolve()
            if not path.is_file() or not path.is_relative_to(root):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            st = path.stat()
            a, b = 0, st.st_size - 1
            m = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            if m and not head:
                a, b = int(m.group(1)), min(int(m.group(2)), st.st_size - 1)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {a}-{b}/{st.st_size}")
            else:
                self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(b - a + 1))
            self.send_header("ETag", f'"{st.st_size}-{st.st_mtime_ns}"')
            self.end_headers()
            if not head:
                self.body(path, a, b + 1)

        def body(self, path: Path, begin: int, end: int) -> None:
            fd = os.open(path, os.O_RDONLY)
            try:
                while begin < end:
                    chunk = os.pread(fd, min(1 << 20, end - begin), begin)
                    self.wfile.write(chunk)
                    begin += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                os.close(fd)

    return Handler


@contextmanager
def serve_files(root: Path) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 (an ephemeral port) for the block; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root.resolve()))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def plain_get(a: str, b: str) -> None:
    """The loopback server's own rate: both files streamed by plain GETs (the remote rows'
    ceiling), read in 1 MB pieces and dropped."""
    import httpx

    with httpx.Client(timeout=60) as client:
        for url in (a, b):
            with client.stream("GET", url) as r:
                r.raise_for_status()
                for _ in r.iter_raw(1 << 20):
                    pass


def format_rows(
    root: Path, a: Path, b: Path, runs: dict[str, list[dict[str, float]]], repeats: int
) -> None:
    """The GGUF row and the remote (loopback) rows, after the safetensors ones."""
    from bench.audit_throughput import child, warm

    for side in ("gguf-a", "gguf-b"):
        (root / side).mkdir(exist_ok=True)
    ga, gb = (to_gguf(p, root / f"gguf-{p.parent.name}" / "model.gguf") for p in (a, b))
    home = str(root / "home")
    warm(ga, gb)
    child("audit", ga, gb, COMPANION_HOME=home)  # fills the digest cache
    for _ in range(repeats):
        warm(ga, gb)
        runs.setdefault("GGUF F16, cached sha", []).append(child("audit, cached sha", ga, gb))
    with serve_files(root) as base:
        urls = [f"{base}/{p.relative_to(root)}" for p in (a, b)]
        for i in range(repeats):
            warm(a, b)
            ceiling = child("get", *urls, COMPANION_HOME=home)
            runs.setdefault("loopback GET (ceiling)", []).append(ceiling)
            cache = root / f"range-cache-{i}"
            env = {"COMPANION_HOME": home, "COMPANION_REMOTE_CACHE_DIR": str(cache)}
            warm(a, b)
            first = child("remote", *urls, **env)
            runs.setdefault("remote (loopback)", []).append(first)
            again = child("remote", *urls, **env)
            runs.setdefault("remote, range cache", []).append(again)
            shutil.rmtree(cache, ignore_errors=True)
