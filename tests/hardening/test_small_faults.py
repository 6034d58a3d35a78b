"""Class 6: descriptor leaks, JSON-RPC framing and shutdown replies, tensor caps."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers.audit_checkpoints import raw_file
from helpers.rawlsp import RawServer

from companion.audit.checkpoint import open_checkpoint
from companion.audit.engine import AuditSetup, run_audit
from companion.audit.safetensors import write_safetensors
from companion.audit.schemas import AuditInput
from companion.errors import InputError
from companion.jobs import Job

pytestmark = pytest.mark.timeout(120)


def open_fds() -> int:
    """Descriptors this process holds."""
    return len(os.listdir("/proc/self/fd"))


def test_failed_multi_file_open_leaks_no_descriptor(tmp_path: Path) -> None:
    for i in range(3):
        write_safetensors(tmp_path / f"a{i}.safetensors", {f"w{i}": np.ones(4, np.float32)})
    raw_file(tmp_path / "z.safetensors", b"{not json")
    before = open_fds()
    for _ in range(20):
        with pytest.raises(InputError):
            open_checkpoint(tmp_path)
    assert open_fds() == before


def test_failed_index_open_leaks_no_descriptor(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "a.safetensors", {"w": np.ones(4, np.float32)})
    weight_map = {"w": "a.safetensors", "x": "a.safetensors"}  # x is not in the shard
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    before = open_fds()
    for _ in range(20):
        with pytest.raises(InputError):
            open_checkpoint(tmp_path)
    assert open_fds() == before


@pytest.fixture
def server():
    """A raw server, initialized."""
    s = RawServer()
    s.initialize()
    yield s
    s.kill()


def test_malformed_frame_gets_parse_error(server: RawServer) -> None:
    server.send_bytes(b"{this is not json")
    reply = server.response(None)
    assert reply["error"]["code"] == -32700
    server.send_bytes(b"[1, 2, 3]")
    assert server.response(None)["error"]["code"] == -32600


def test_requests_after_shutdown_are_refused(server: RawServer) -> None:
    assert "error" not in server.response(server.send("shutdown"))
    params = {"textDocument": {"uri": "file:///x.json"}, "position": {"line": 0, "character": 0}}
    reply = server.response(server.send("textDocument/hover", params))
    assert reply["error"]["code"] == -32600


def test_tensor_cap_is_stated_in_the_result(tmp_path: Path) -> None:
    tensors = {f"layers.{i}.w": np.full(8, i, np.float32) for i in range(12)}
    write_safetensors(tmp_path / "model.safetensors", tensors)
    setup = AuditSetup(1, None, "audit.compare", max_tensors=5)
    args = AuditInput(a=str(tmp_path), b=str(tmp_path))
    result = run_audit(args, (tmp_path, tmp_path, None), Job(), setup)
    assert len(result.per_tensor) <= 5
    assert any(r.kind == "tensor_cap" and "first 5 per" in r.statement for r in result.reasons)
