"""Remote GGUF over HTTP Range on the loopback hub (127.0.0.1): the header is read by range,
then only the selected tensors' ranges; reads equal the local reader's (dequantized, Q/K rows
re-ordered); a hostile header stops after a few bytes."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from helpers.gguf_files import write_gguf
from helpers.hub_server import Hub
from helpers.remote_repos import hub_env

from companion.audit.checkpoint import open_checkpoint
from companion.audit.gguf import GGUFFile
from companion.audit.remote_gguf import FIRST_BYTES
from companion.audit.remote_http import RemoteOptions
from companion.audit.schemas import AuditResult
from companion.errors import InputError
from companion.settings import Settings
from companion.toolbox import run_tool
from companion.tools import ToolContext

Q = gguf.GGMLQuantizationType
HIDDEN, KV, FF, HEADS, KV_HEADS = 256, 128, 4096, 4, 2  # ~3.9 MB, 3.5 MB of it MLP


def small_gguf(path: Path, seed: int) -> Path:
    """Two llama blocks: F32 norms, Q8_0 attention, F16 K, big Q4_0 MLP (never selected)."""
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    items = [("output_norm.weight", 1 + w(HIDDEN), Q.F32)]
    for i in range(2):
        p = f"blk.{i}."
        items += [
            (p + "attn_norm.weight", 1 + w(HIDDEN), Q.F32),
            (p + "ffn_norm.weight", 1 + w(HIDDEN), Q.F32),
            (p + "attn_q.weight", w(HIDDEN, HIDDEN), Q.Q8_0),
            (p + "attn_k.weight", w(KV, HIDDEN), Q.F16),
            (p + "attn_v.weight", w(KV, HIDDEN), Q.Q8_0),
            (p + "attn_output.weight", w(HIDDEN, HIDDEN), Q.Q8_0),
            (p + "ffn_up.weight", w(FF, HIDDEN), Q.Q4_0),
            (p + "ffn_gate.weight", w(FF, HIDDEN), Q.Q4_0),
            (p + "ffn_down.weight", w(HIDDEN, FF), Q.Q4_0),
        ]
    return write_gguf(path, items, heads=HEADS, kv_heads=KV_HEADS)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A GGUF and an independent one, written locally."""
    return {
        "one": small_gguf(tmp_path / "one.gguf", 1),
        "two": small_gguf(tmp_path / "two.gguf", 2),
    }


@pytest.fixture
def hub(files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """org/gg holds model.gguf; org/sniff serves the same bytes as model.safetensors."""
    data = files["one"].read_bytes()
    repos = {
        "org/gg": {"model.gguf": data},
        "org/sniff": {"model.safetensors": data},
        "org/other": {"model.gguf": files["two"].read_bytes()},
    }
    with hub_env(repos, tmp_path, monkeypatch) as h:
        yield h


def audit(a: str, b: str) -> AuditResult:
    """The audit tool on norm and attention roles."""
    args = {"a": a, "b": b, "roles": ["norm", "attn"]}
    result = run_tool("audit.compare", args, ToolContext(settings=Settings()))
    assert isinstance(result, AuditResult)
    return result


def test_remote_reads_equal_the_local_reader(hub: Hub, files: dict[str, Path]) -> None:
    ck = open_checkpoint("hf://org/gg/model.gguf", RemoteOptions.from_settings())
    local = GGUFFile(files["one"])
    try:
        assert set(ck.tensors) == set(local.tensors)
        for name in (
            "model.layers.1.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.mlp.up_proj.weight",
            "model.norm.weight",
        ):
            assert np.array_equal(ck.tensors[name].file.read(name), local.read(name)), name
    finally:
        local.close()
        ck.close()


def test_remote_gguf_audit_fetches_only_the_selected_roles(
    hub: Hub, files: dict[str, Path]
) -> None:
    r = audit("hf://org/gg/model.gguf", str(files["one"]))
    assert r.verdict == "derived", [x.statement for x in r.reasons]
    assert r.per_tensor and all(t.metrics.identical_frac == 1.0 for t in r.per_tensor)
    local = GGUFFile(files["one"])
    selected = {t.name_a for t in r.per_tensor}
    needed = sum(
        local.span(i)[1] - local.span(i)[0] for n, i in local.tensors.items() if n in selected
    )
    local.close()
    assert hub.sent <= FIRST_BYTES + needed  # the first header window, then the selected ranges
    assert hub.sent < files["one"].stat().st_size / 2  # most of the MLP never travelled
    entry = next(i for i in r.manifest.inputs if i.sha256_from == "remote")
    assert entry.path.endswith("/org/gg/resolve/main/model.gguf") and entry.ranges_sha256
    hub.sent = 0
    assert audit("hf://org/gg/model.gguf", str(files["one"])).verdict == "derived"
    assert hub.sent == 0  # header and tensors from the range cache


def test_gguf_is_recognised_by_its_magic_and_independent_files_stay_apart(hub: Hub) -> None:
    r = audit("hf://org/sniff", "hf://org/other/model.gguf")  # a .safetensors name, GGUF bytes
    assert r.verdict == "independent", [x.statement for x in r.reasons]


def test_a_hostile_remote_header_stops_after_a_few_bytes(hub: Hub, files: dict[str, Path]) -> None:
    data = bytearray(files["one"].read_bytes())
    data[8:16] = struct.pack("<Q", 1 << 40)  # a tensor count far beyond the file
    hub.repos["org/gg"]["model.gguf"] = bytes(data)
    with pytest.raises(InputError) as err:
        open_checkpoint("hf://org/gg/model.gguf", RemoteOptions.from_settings())
    assert "tensor count" in err.value.text and err.value.hint
    assert hub.sent <= 8 + (1 << 20)  # the magic, then at most the first header window
