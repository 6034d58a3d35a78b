"""PyTorch zip checkpoints read without torch and without running pickle code.

The malicious files are real: pickles that would run `os.system` (creating a marker file) or
`builtins.eval` if any ordinary unpickler loaded them. The tests assert the marker never
appears. Zips are built here byte by byte (no torch needed); when torch is installed, real
`torch.save` files are read too.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from companion.audit.checkpoint import open_checkpoint
from companion.audit.safetensors import decode, write_safetensors
from companion.audit.schemas import AuditResult
from companion.errors import InputError
from companion.toolbox import run_tool
from companion.tools import ToolContext
from tests.helpers.torch_zip import (
    global_op,
    handmade,
    state_dict_pickle,
    tuple_op,
    u,
    write_zip,
)


def test_a_handmade_zip_reads_back_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((8, 16)).astype("<f4"),
        "model.layers.0.input_layernorm.weight": rng.standard_normal(16).astype(ml_dtypes.bfloat16),
        "model.embed_tokens.weight": rng.standard_normal((5, 16)).astype("<f2"),
    }
    ck = open_checkpoint(handmade(tmp_path / "pytorch_model.bin", arrays))
    try:
        for name, arr in arrays.items():
            ref = ck.tensors[name]
            assert ref.info.shape == arr.shape
            assert ref.file.read(name).tobytes() == np.ascontiguousarray(arr).tobytes(), name
    finally:
        ck.close()


class _Reduce:
    """An object whose __reduce__ runs a shell command when unpickled normally."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _malicious(kind: str, marker: Path) -> bytes:
    """data.pkl payloads that would create `marker` (or evaluate code) if ever run."""
    if kind == "reduce":  # a real __reduce__ object inside an ordinary state dict
        return pickle.dumps(OrderedDict(w=_Reduce(marker)), protocol=2)
    if kind == "os.system":
        return b"\x80\x02" + global_op("os", "system") + tuple_op([u(f"touch {marker}")]) + b"R."
    if kind == "builtins.eval":
        code = f"open({str(marker)!r}, 'w').close()"
        return b"\x80\x02" + global_op("builtins", "eval") + tuple_op([u(code)]) + b"R."
    if kind == "stack_global":  # protocol 4 STACK_GLOBAL naming posix.system
        return (
            b"\x80\x04"
            + u("posix")
            + u("system")
            + b"\x93"
            + tuple_op([u(f"touch {marker}")])
            + b"R."
        )
    # after a valid tensor, deep inside the dict
    valid = state_dict_pickle([("w", "FloatStorage", "0", 4, (4,))])[:-2]
    return (
        valid
        + u("evil")
        + global_op("subprocess", "getoutput")
        + tuple_op([u(f"touch {marker}")])
        + b"Ru."
    )


@pytest.mark.parametrize("kind", ["reduce", "os.system", "builtins.eval", "stack_global", "nested"])
def test_malicious_pickles_are_refused_and_never_run(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write_zip(tmp_path / "evil.bin", _malicious(kind, marker), {"0": np.zeros(4, "<f4")})
    with pytest.raises(InputError) as err:
        open_checkpoint(path)
    named = {
        "reduce": "posix.system",
        "stack_global": "posix.system",
        "nested": "subprocess.getoutput",
    }
    assert named.get(kind, kind) in err.value.message
    assert "nothing in the file was run" in err.value.message and err.value.hint
    assert not marker.exists()


def test_the_malicious_pickle_is_real(tmp_path: Path) -> None:
    """Control: an ordinary unpickler does run the payload (so the test above can fail)."""
    marker = tmp_path / "pwned"
    pickle.loads(_malicious("os.system", marker))
    assert marker.exists()


def test_a_legacy_pickle_is_refused_with_advice(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(pickle.dumps(_Reduce(marker), protocol=2))
    with pytest.raises(InputError) as err:
        open_checkpoint(path)
    assert "legacy" in err.value.message and "safetensors" in (err.value.hint or "")
    assert not marker.exists()


def test_a_storage_shorter_than_claimed_is_refused(tmp_path: Path) -> None:
    pkl = state_dict_pickle([("w", "FloatStorage", "0", 2**30, (2**30,))])
    path = write_zip(tmp_path / "short.bin", pkl, {"0": np.zeros(4, "<f4")})
    with pytest.raises(InputError, match="short"):
        open_checkpoint(path)


def test_real_torch_save_files_read_without_torch_code(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")  # a test-only extra: never a product dependency
    g = torch.Generator().manual_seed(0)
    sd = OrderedDict(
        a=torch.randn(6, 4, generator=g),
        b=torch.randn(8, generator=g).to(torch.bfloat16),
        c=torch.nn.Parameter(torch.randn(3, generator=g).half()),
    )
    sd["row"] = sd["a"][2]  # a view sharing a's storage at an offset
    path = tmp_path / "model.pt"
    torch.save(sd, path)
    ck = open_checkpoint(path)
    try:
        for name, t in sd.items():
            want = t.detach().float().numpy()
            got = decode(ck.tensors[name].file.read(name), np.float32)
            assert np.array_equal(got.reshape(want.shape), want), name
    finally:
        ck.close()


def test_audit_of_a_torch_save_against_its_safetensors_twin(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for layer in range(4):
        arrays[f"model.layers.{layer}.input_layernorm.weight"] = (
            1 + 0.1 * rng.standard_normal(64)
        ).astype("<f4")
        arrays[f"model.layers.{layer}.self_attn.q_proj.weight"] = rng.standard_normal(
            (64, 64)
        ).astype("<f4")
    bin_path = handmade(tmp_path / "pytorch_model.bin", arrays)
    st = tmp_path / "model.safetensors"
    write_safetensors(st, arrays)
    result = run_tool("audit.compare", {"a": str(bin_path), "b": str(st)}, ToolContext())
    assert isinstance(result, AuditResult)
    assert result.verdict == "derived"
    assert all(t.metrics.identical_frac == 1.0 for t in result.per_tensor)
