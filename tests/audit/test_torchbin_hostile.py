"""Hostile PyTorch zip checkpoints beyond code execution: pickles that would cost gigabytes
of memory, opcodes torch.save never writes, and a BUILD that changes a tensor after its
checks (which made the audit wait forever for bytes past the end of the file).

The memory cases run `companion audit` in a child process and read its peak RSS: before the
opcode walk, the 60 MB list bomb peaked at 4.3 GB and the 100-byte memo bomb at 4.2 GB.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from companion.audit.checkpoint import open_checkpoint
from companion.audit.pickle_scan import MAX_OPS, check_pickle
from companion.errors import InputError
from tests.helpers.torch_zip import global_op, int_op, tuple_op, u, write_zip

_CHILD = """
import sys
from pathlib import Path
from companion.cli.main import main
rc = main(sys.argv[1:])
hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM")]
print(int(hwm[0].split()[1]) // 1024, file=sys.stderr)
sys.exit(rc)
"""


def _audit_in_child(path: Path) -> tuple[int, str, int]:
    """`companion audit path path` in a fresh interpreter: exit code, message, peak RSS MB."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, "audit", str(path), str(path)],
        capture_output=True,
        text=True,
    )
    *lines, peak = proc.stderr.strip().splitlines()
    return proc.returncode, "\n".join(lines), int(peak)


def _zip(path: Path, pkl: bytes) -> Path:
    """A torch.save-shaped zip holding only `pkl` (and one small storage)."""
    return write_zip(path, pkl, {"0": np.zeros(4, "<f4")})


def _one_tensor(after: bytes = b"") -> bytes:
    """A state dict of one 4-float tensor; `after` runs on the tensor before it is stored."""
    pid = tuple_op([u("storage"), global_op("torch", "FloatStorage"), u("0"), u("cpu"), int_op(4)])
    args = [pid + b"Q", int_op(0), tuple_op([int_op(4)]), tuple_op([int_op(1)]), b"\x89"]
    args.append(global_op("collections", "OrderedDict") + b")R")
    head = b"\x80\x02" + global_op("collections", "OrderedDict") + b")R("
    tensor = u("w") + global_op("torch._utils", "_rebuild_tensor_v2") + tuple_op(args) + b"R"
    return head + tensor + after + b"u."


@pytest.mark.parametrize(
    ("pkl", "named"),
    [
        (b"\x80\x02" + b"]" * (MAX_OPS + 10) + b".", f"more than {MAX_OPS:,} pickle operations"),
        (b"\x80\x02Nr" + struct.pack("<I", 1 << 28) + b".", "memo index beyond"),
    ],
    ids=["sixty-megabytes-of-lists", "memo-index-2^28"],
)
def test_memory_bombs_are_refused_before_unpickling(pkl: bytes, named: str, tmp_path: Path) -> None:
    code, message, peak_mb = _audit_in_child(_zip(tmp_path / "bomb.bin", pkl))
    assert code == 2 and named in message and "refused before unpickling" in message
    assert "Next step:" in message
    assert peak_mb < 400, f"peak RSS {peak_mb} MB"


@pytest.mark.parametrize(
    ("op", "name"),
    [(b"0", "POP"), (b"(i", "INST"), (b"\x82\x01", "EXT1"), (b"P0\n", "PERSID"), (b"o", "OBJ")],
)
def test_opcodes_torch_save_never_writes_are_refused_by_name(
    op: bytes, name: str, tmp_path: Path
) -> None:
    path = _zip(tmp_path / "odd.bin", b"\x80\x02N" + op + b".")
    with pytest.raises(InputError) as err:
        open_checkpoint(path)
    assert f"opcode {name}," in err.value.message and err.value.hint


@pytest.mark.parametrize(
    "state",
    [
        b"}" + u("shape") + tuple_op([int_op(10**9)]) + b"s",  # 4 GB past a 16-byte storage
        b"}" + u("storage") + int_op(5) + b"s",  # no storage at all
    ],
    ids=["shape", "storage"],
)
def test_a_build_that_changes_a_tensor_after_its_checks_is_refused(
    state: bytes, tmp_path: Path
) -> None:
    path = _zip(tmp_path / "build.bin", _one_tensor(state + b"b"))
    code, message, _ = _audit_in_child(path)  # it waited forever for the missing bytes
    assert code == 2 and "changes a tensor or storage after building it" in message


def test_an_unchanged_tensor_still_reads(tmp_path: Path) -> None:
    """Control for the BUILD test: the same pickle without the BUILD opens."""
    ck = open_checkpoint(_zip(tmp_path / "plain.bin", _one_tensor()))
    try:
        assert ck.tensors["w"].info.shape == (4,)
    finally:
        ck.close()


@pytest.mark.parametrize("protocol", [2, 4])
def test_real_training_checkpoints_pass_the_opcode_walk(protocol: int) -> None:
    torch = pytest.importorskip("torch")  # a test-only extra: never a product dependency
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": 3,
        "lr": 1e-3,
        "seed": 2**70,
        "tags": ["a", None, True, b"raw"],
    }
    buf = io.BytesIO()
    torch.save(state, buf, pickle_protocol=protocol)
    with zipfile.ZipFile(buf) as zf:
        name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
        check_pickle(zf.read(name), "ckpt.pt")  # raises if it refused anything
