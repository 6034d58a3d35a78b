"""The strict safetensors reader: real files, every dtype, streaming, and hostile inputs."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from helpers.audit_checkpoints import entry, pair_with, raw_file
from safetensors.numpy import load_file, save_file

from companion.audit.checkpoint import open_checkpoint
from companion.audit.kernel import stream_pair
from companion.audit.metrics import Moments, StreamPlan
from companion.audit.safetensors import SafetensorsFile, decode, write_safetensors
from companion.errors import InputError
from companion.toolbox import run_tool
from companion.tools import ToolContext


def audit(a: Path, b: Path, **kw: Any) -> Any:
    """Run the tool."""
    return run_tool("audit.compare", {"a": str(a), "b": str(b), **kw}, ToolContext())


def error_of(path: Path) -> str:
    """The InputError text raised when opening a file."""
    with pytest.raises(InputError) as err:
        open_checkpoint(path)
    assert err.value.hint  # every error names the next step
    return err.value.message


DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "F8_E4M3": ml_dtypes.float8_e4m3fn,
    "F8_E5M2": ml_dtypes.float8_e5m2,
    "I8": np.int8,
    "U8": np.uint8,
    "I32": np.int32,
    "I64": np.int64,
}


@pytest.mark.parametrize("name", list(DTYPES))
def test_every_dtype_round_trips(tmp_path: Path, name: str) -> None:
    values = np.arange(-6, 6, dtype=np.float64).reshape(3, 4)
    if name == "U8":
        values = values + 6
    arr = values.astype(DTYPES[name])
    write_safetensors(tmp_path / "m.safetensors", {"t": arr})
    f = SafetensorsFile(tmp_path / "m.safetensors")
    assert f.tensors["t"].dtype == name and f.tensors["t"].shape == (3, 4)
    np.testing.assert_array_equal(decode(f.read("t")), values.reshape(-1))
    f.close()


def test_interoperates_with_the_safetensors_library(tmp_path: Path) -> None:
    arrays = {"a": np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)}
    save_file(arrays, str(tmp_path / "lib.safetensors"))
    f = SafetensorsFile(tmp_path / "lib.safetensors")
    np.testing.assert_array_equal(f.read("a").reshape(5, 7), arrays["a"])
    write_safetensors(tmp_path / "ours.safetensors", arrays, {"format": "pt"})
    np.testing.assert_array_equal(load_file(str(tmp_path / "ours.safetensors"))["a"], arrays["a"])


def test_streamed_moments_match_numpy_for_gains_near_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    a = (1 + 1e-3 * rng.standard_normal((300, 50))).astype(np.float32)
    b = (a + 1e-3 * rng.standard_normal(a.shape)).astype(np.float32)
    pa, pb = pair_with(tmp_path, "w", a, b)
    ca, cb = open_checkpoint(pa), open_checkpoint(pb)
    pos = np.arange(0, a.size, 7)
    acc, sa, sb = stream_pair(
        ca.tensors["w"], cb.tensors["w"], StreamPlan(chunk=64), (pos, pos[:0]), lambda n: None
    )
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    assert acc.moments.n == x.size
    assert acc.moments.pearson() == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
    assert acc.moments.cosine() == pytest.approx(x @ y / np.sqrt((x @ x) * (y @ y)), abs=1e-12)
    assert acc.max_abs == pytest.approx(np.abs(x - y).max())
    assert acc.moments.ka != 0  # the gains were shifted
    np.testing.assert_array_equal(sa, x[pos])  # the sample is gathered on the way
    assert sb.size == 0
    assert Moments().pearson() is None


def test_nan_inf_and_zero_size_are_reported(tmp_path: Path) -> None:
    a = np.random.default_rng(1).standard_normal((32, 32)).astype(np.float32)
    b = a.copy()
    b[0, :5] = np.nan
    b[3, 3] = np.inf
    a[7, 7] = -np.inf
    from companion.audit.safetensors import write_safetensors as w

    for d, arr in (("pa", a), ("pb", b)):
        (tmp_path / d).mkdir()
        w(
            tmp_path / d / "model.safetensors",
            {
                "model.layers.0.mlp.up_proj.weight": arr,
                "model.layers.0.mlp.down_proj.weight": np.zeros((0, 4), np.float32),
            },
        )
    r = audit(tmp_path / "pa", tmp_path / "pb")
    up = next(t for t in r.per_tensor if t.role == "up")
    assert up.metrics.nonfinite_a == 1 and up.metrics.nonfinite_b == 6
    assert up.metrics.pearson == pytest.approx(1.0) and up.metrics.identical_frac == 1.0
    assert any("non-finite" in n for n in up.notes)
    zero = next(t for t in r.per_tensor if t.role == "down")
    assert zero.metrics.pearson is None and "zero-size" in zero.notes[0]
    assert any(x.kind == "nonfinite" for x in r.reasons)
    json.loads(r.model_dump_json())


def test_header_length_beyond_file(tmp_path: Path) -> None:
    p = raw_file(tmp_path / "x.safetensors", {}, length=10_000)
    assert "past the end of the file" in error_of(p)
    p = raw_file(tmp_path / "y.safetensors", {}, length=2**63)
    assert "exceeds" in error_of(p)
    (tmp_path / "z.safetensors").write_bytes(b"\x01\x02")
    assert "only 2 bytes" in error_of(tmp_path / "z.safetensors")


def test_non_json_and_duplicate_names(tmp_path: Path) -> None:
    assert "not valid JSON" in error_of(raw_file(tmp_path / "a.safetensors", b"{not json}"))
    assert "not valid JSON" in error_of(raw_file(tmp_path / "b.safetensors", b"\xff\xfe{}"))
    one = b'{"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}'
    dup = b'{"t": ' + one + b', "t": ' + one.replace(b"[0, 1]", b"[1, 2]") + b"}"
    assert "duplicate name 't'" in error_of(raw_file(tmp_path / "c.safetensors", dup, b"ab"))
    assert "JSON object" in error_of(raw_file(tmp_path / "d.safetensors", b"[1, 2]"))


def test_overlapping_gapped_and_out_of_bounds_offsets(tmp_path: Path) -> None:
    h = {"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 2, 6)}
    assert "overlaps" in error_of(raw_file(tmp_path / "o.safetensors", h, b"x" * 6))
    h = {"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 8, 12)}
    assert "gap" in error_of(raw_file(tmp_path / "g.safetensors", h, b"x" * 12))
    h = {"a": entry("U8", [4], 0, 4)}
    assert "past the end" in error_of(
        raw_file(tmp_path / "e.safetensors", {"a": entry("U8", [8], 0, 8)}, b"x" * 4)
    )
    assert "trailing" in error_of(raw_file(tmp_path / "t.safetensors", h, b"x" * 9))


def test_dtype_shape_mismatch_and_unknown_dtype(tmp_path: Path) -> None:
    h = {"a": entry("F32", [3], 0, 8)}
    assert "is 12 bytes but its offsets span 8" in error_of(
        raw_file(tmp_path / "m.safetensors", h, b"x" * 8)
    )
    h = {"a": entry("F4", [2], 0, 1)}
    assert "unknown dtype 'F4'" in error_of(raw_file(tmp_path / "u.safetensors", h, b"x"))
    h = {"a": entry("F32", [2**40, 2**40], 0, 8)}
    assert "bytes but its offsets" in error_of(raw_file(tmp_path / "big.safetensors", h, b"x" * 8))
    h = {"a": entry("F32", [2**62, 0], 0, 0)}  # zero bytes, yet numpy cannot shape it (exit 70)
    assert "spans more than 2^62 bytes" in error_of(raw_file(tmp_path / "z.safetensors", h))


def test_index_with_missing_shard_and_bad_names(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "s1.safetensors", {"a": np.ones(2, np.float32)})
    index = {"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "does not exist" in error_of(tmp_path) and "s2.safetensors" in error_of(tmp_path)
    index = {"weight_map": {"a": "../s1.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "not a file in its folder" in error_of(tmp_path)
    index = {"weight_map": {"zzz": "s1.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "does not contain it" in error_of(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("{]")
    assert "not valid JSON" in error_of(tmp_path)


def test_symlink_loops(tmp_path: Path) -> None:
    loop = tmp_path / "loop.safetensors"
    os.symlink(loop, loop)
    assert "symlink loop" in error_of(loop)
    with pytest.raises(InputError) as err:
        audit(loop, loop)
    assert "symlink loop" in err.value.message
    d = tmp_path / "d"
    d.mkdir()
    os.symlink(d / "x.safetensors", d / "x.safetensors")
    with pytest.raises(InputError):
        open_checkpoint(d)
    write_safetensors(tmp_path / "s1.safetensors", {"a": np.ones(2, np.float32)})
    os.symlink(tmp_path / "s2.safetensors", tmp_path / "s2.safetensors")
    index = {"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}
    (tmp_path / "m.safetensors.index.json").write_text(json.dumps(index))
    assert "symlink loop" in error_of(tmp_path / "m.safetensors.index.json")


def test_missing_and_empty_inputs(tmp_path: Path) -> None:
    assert "does not exist" in error_of(tmp_path / "nope")
    assert "No .safetensors, .gguf or .bin files" in error_of(tmp_path)
    p = raw_file(tmp_path / "e.safetensors", {})
    assert "no tensors" in error_of(p)
    with pytest.raises(InputError) as err:
        run_tool("audit.compare", {"a": str(p), "b": str(p), "roles": "norm,bogus"}, ToolContext())
    assert "bogus" in err.value.message


def test_mtp_layers_are_flagged_not_matched(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {
        f"model.layers.{i}.mlp.up_proj.weight": rng.standard_normal((16, 8)).astype(np.float32)
        for i in range(3)
    }
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        write_safetensors(tmp_path / d / "model.safetensors", tensors)
        cfg = {"num_hidden_layers": 2, "num_nextn_predict_layers": 1}
        (tmp_path / d / "config.json").write_text(json.dumps(cfg))
    r = audit(tmp_path / "a", tmp_path / "b")
    assert r.mtp == ["model.layers.2.mlp.up_proj.weight"] * 2
    assert {t.layer for t in r.per_tensor} == {0, 1}
    assert any(x.kind == "mtp" for x in r.reasons)


def test_header_is_not_trusted_for_allocation(tmp_path: Path) -> None:
    blob = json.dumps({"a": entry("U8", [1], 0, 1)}).encode()
    p = tmp_path / "h.safetensors"
    p.write_bytes(struct.pack("<Q", len(blob)) + blob + b"z")
    assert SafetensorsFile(p).read("a").tolist() == [ord("z")]


@pytest.mark.parametrize("name", ["BF16", "F8_E4M3", "F8_E5M2"])
def test_stored_words_decode_like_ml_dtypes_for_every_bit_pattern(
    tmp_path: Path, name: str
) -> None:
    bits = np.arange(
        1 << (16 if name == "BF16" else 8), dtype=np.uint16 if name == "BF16" else np.uint8
    )
    want = bits.view(DTYPES[name]).astype(np.float32)  # every value, NaN, inf and subnormal
    write_safetensors(tmp_path / "w.safetensors", {"t": bits.view(DTYPES[name])})
    f = SafetensorsFile(tmp_path / "w.safetensors")
    got = f.read("t")
    with pytest.raises(ValueError):  # raw words never cast to float by mistake
        got.astype(np.float32)
    np.testing.assert_array_equal(decode(got, np.float32), want)
    f.close()


def test_a_bf16_audit_from_the_cli_never_imports_ml_dtypes_or_gguf(fam: dict[str, Path]) -> None:
    """ml_dtypes' extension costs ~0.5 s to import, the gguf package ~60 ms: reading bf16
    safetensors needs neither."""
    run = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "companion",
            "audit",
            str(fam["base"]),
            str(fam["bf16"]),
            "--json",
            "--no-store",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["verdict"] == "derived"
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()}
    assert "companion.audit.safetensors" in imported and "ml_dtypes" not in imported
    assert "gguf" not in imported  # sniffing for the GGUF magic loads nothing
