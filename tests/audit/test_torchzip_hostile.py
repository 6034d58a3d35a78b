"""Hostile zip layers under PyTorch checkpoints: compressed, encrypted, lying, doubled,
shifted and truncated members. torch.save stores every member once, uncompressed, from byte
0; anything else is refused with a clear error before a byte of it is inflated.

Before the zip layer read members itself, zipfile's reader inflated them: a 512 MB deflate
bomb as data.pkl peaked at about 1.1 GB (zipfile inflates up to 2 GB before cutting to the
declared size), and CRC, encryption, codec and header-name errors crashed the CLI (exit 70).
"""

from __future__ import annotations

import bz2
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from companion.audit.checkpoint import open_checkpoint
from companion.audit.safetensors import write_safetensors
from companion.errors import InputError
from tests.audit.test_torchbin_hostile import _audit_in_child
from tests.helpers.torch_zip import Raw, raw_zip, state_dict_pickle, tensor_pickle, write_zip

_PKL = state_dict_pickle([("w", "FloatStorage", "0", 4, (4,))])
_DATA = Raw("archive/data/0", np.arange(4, dtype="<f4").tobytes())
_ORDER = Raw("archive/byteorder", b"little")
_F4 = np.zeros(4, "<f4")


def _deflate(data: bytes) -> bytes:
    """Raw deflate, as a zip member holds it."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    return co.compress(data) + co.flush()


def _deflate_bomb(megabytes: int) -> bytes:
    """Raw deflate of `megabytes` MB of zeros, built from one fully flushed megabyte."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = co.compress(b"\0" * (1 << 20)) + co.flush(zlib.Z_FULL_FLUSH)
    return chunk * megabytes + b"\x03\x00"  # an empty final block ends the stream


def _pkl(**claims: object) -> Raw:
    """data.pkl stored as it is, with some of its header fields replaced."""
    return Raw("archive/data.pkl", _PKL, **claims)  # type: ignore[arg-type]


def test_a_raw_zip_of_a_plain_checkpoint_reads(tmp_path: Path) -> None:
    """Control: the byte-by-byte writer makes a zip the reader accepts."""
    ck = open_checkpoint(raw_zip(tmp_path / "ok.bin", [_pkl(), _ORDER, _DATA]))
    try:
        assert ck.tensors["w"].file.read("w").tobytes() == _DATA.data
    finally:
        ck.close()


_LAYOUTS = {
    "deflated-data.pkl": (
        [Raw("archive/data.pkl", _deflate(_PKL), method=8, size=len(_PKL), crc=zlib.crc32(_PKL))],
        "compressed (deflate)",
    ),
    "bzip2-byteorder": (
        [_pkl(), Raw("archive/byteorder", bz2.compress(b"little"), 12, 6, zlib.crc32(b"little"))],
        "compressed (bzip2)",
    ),
    "unknown-method": ([_pkl(method=99)], "compressed (AES)"),
    "encrypted": ([_pkl(flags=1)], "is encrypted"),
    "bad-crc": ([_pkl(crc=1234)], "fails its CRC-32 check"),
    "stored-sizes-disagree": ([_pkl(size=len(_PKL) + 7)], "sizes disagree"),
    "local-name-differs": ([_pkl(local_name="archive/data.pkx")], "disagrees with the central"),
    "huge-byteorder": ([_pkl(), Raw("archive/byteorder", b"little", size=1 << 31)], "16 byte"),
    "two-data.pkl": ([_pkl(), Raw("archive/data.pkl", b"\x80\x02}.")], "two zip members named"),
}


@pytest.mark.parametrize(("members", "named"), _LAYOUTS.values(), ids=_LAYOUTS.keys())
def test_hostile_zip_members_are_refused(members: list[Raw], named: str, tmp_path: Path) -> None:
    path = raw_zip(tmp_path / "odd.bin", [*members, _DATA])
    with pytest.raises(InputError) as err:
        open_checkpoint(path)
    assert named in err.value.message and err.value.hint


def _whole(tmp_path: Path) -> bytes:
    """The bytes of a plain raw-zip checkpoint."""
    return raw_zip(tmp_path / "whole.bin", [_pkl(), _ORDER, _DATA]).read_bytes()


_MANGLED = {
    "truncated": (lambda d: d[: len(d) // 2], "truncated or corrupt zip"),
    "no-end-record": (lambda d: d[:-5], "truncated or corrupt zip"),
    "empty": (lambda d: b"", "not a PyTorch checkpoint"),
    "garbage": (lambda d: b"hello" * 20, "not a PyTorch checkpoint"),
    "prefixed": (lambda d: d[:30] + d, "not at byte 0"),  # a stray local header first
    "directory-offset-past-the-file": (lambda d: d[:-6] + b"\xff\xff\x00\x00\x00\x00", "byte 0"),
}


@pytest.mark.parametrize(("mangle", "named"), _MANGLED.values(), ids=_MANGLED.keys())
def test_broken_archives_are_refused(
    mangle: Callable[[bytes], bytes], named: str, tmp_path: Path
) -> None:
    path = tmp_path / "broken.bin"
    path.write_bytes(mangle(_whole(tmp_path)))
    with pytest.raises(InputError) as err:
        open_checkpoint(path)
    assert named in err.value.message and err.value.hint


def test_a_deflate_bomb_as_data_pkl_is_never_inflated(tmp_path: Path) -> None:
    bomb = _deflate_bomb(512)  # 512 MB of zeros in about half a megabyte
    path = raw_zip(tmp_path / "bomb.bin", [Raw("archive/data.pkl", bomb, 8, 100, 0), _DATA])
    code, message, peak_mb = _audit_in_child(path)
    assert code == 2 and "compressed (deflate)" in message and "Next step:" in message
    assert peak_mb < 400, f"peak RSS {peak_mb} MB"


def test_a_bin_that_is_safetensors_is_read_as_safetensors(tmp_path: Path) -> None:
    """The first bytes decide, not the name (before: 'a legacy (non-zip) PyTorch pickle')."""
    arr = np.arange(6, dtype="<f4").reshape(2, 3)
    path = tmp_path / "pytorch_model.bin"
    write_safetensors(path, {"w": arr})
    ck = open_checkpoint(path)
    try:
        assert ck.tensors["w"].info.shape == (2, 3)
        assert ck.tensors["w"].file.read("w").tobytes() == arr.tobytes()
    finally:
        ck.close()


def test_a_safetensors_zip_polyglot_is_judged_as_safetensors(tmp_path: Path) -> None:
    """safetensors first, a torch zip appended: zipfile finds the zip from the end (and the
    zip was read), but torch.load and safetensors both look at byte 0; the appended zip is
    trailing bytes of a safetensors file and is refused as such."""
    st = tmp_path / "a.safetensors"
    write_safetensors(st, {"w": np.zeros(4, "<f4")})
    path = tmp_path / "poly.bin"
    path.write_bytes(st.read_bytes() + _whole(tmp_path))
    with pytest.raises(InputError) as err:
        open_checkpoint(path)
    assert "trailing bytes" in err.value.message and err.value.hint


@pytest.mark.parametrize(
    ("numel", "shape", "strides"),
    [
        (0, (2**62, 0), (0, 1)),
        (0, (0, 2**70), (2**70, 1)),
        (0, (2**31, 2**31, 0), (0, 0, 1)),
        (4, (1,) * 33 + (4,), (4,) * 33 + (1,)),
    ],
    ids=["2^62-by-0", "0-by-2^70", "2^31-by-2^31-by-0", "34-dims"],
)
def test_shapes_numpy_cannot_hold_are_refused(
    numel: int, shape: tuple[int, ...], strides: tuple[int, ...], tmp_path: Path
) -> None:
    """Zero bytes, so no storage bound catches them, but numpy cannot shape them: fingerprint
    and identify crashed on the reshape (exit 70). They are refused when the file opens, as is
    a tensor of more sizes than a safetensors file may hold (MAX_NDIM)."""
    path = write_zip(tmp_path / "w.bin", tensor_pickle(numel, shape, strides), {"0": _F4})
    with pytest.raises(InputError) as err:
        open_checkpoint(path)
    assert "spans more than 2^62 bytes" in err.value.message and err.value.hint


def test_a_zero_size_tensor_of_sane_shape_still_opens(tmp_path: Path) -> None:
    """Control: (0, 4096) is an empty tensor numpy can shape; it opens as before."""
    path = write_zip(tmp_path / "w.bin", tensor_pickle(0, (0, 4096), (4096, 1)), {"0": _F4})
    ck = open_checkpoint(path)
    try:
        assert ck.tensors["w"].info.shape == (0, 4096)
    finally:
        ck.close()
