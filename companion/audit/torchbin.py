"""PyTorch zip checkpoints (`.bin`, `.pt`) read without torch and without running pickle code.

`torch.save` writes a zip: `<name>/data.pkl` (a pickle of the state dict) and one member per
storage, `<name>/data/<key>`, stored uncompressed. The pickle is read by an unpickler whose
`find_class` hands out only stand-ins for what rebuilds tensors (`_rebuild_tensor_v2`,
`_rebuild_parameter`, the storage types, `collections.OrderedDict`); any other global is
refused by name before anything runs, so `os.system`, `builtins.eval` and `__reduce__`
tricks never execute. A tensor becomes a byte range of its storage member, read with pread
like a safetensors tensor.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from companion import files
from companion.audit import torchzip
from companion.audit.pickle_scan import check_pickle
from companion.audit.safetensors import DTYPES, MAX_NDIM, TensorInfo, fits_numpy
from companion.audit.source import Array, read_whole
from companion.errors import InputError

TORCH_SUFFIXES = frozenset({".bin", ".pt", ".pth"})
MAX_PICKLE_BYTES = 64 << 20
_STORAGES = {
    "FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16",
    "DoubleStorage": "F64", "LongStorage": "I64", "IntStorage": "I32", "CharStorage": "I8",
    "ByteStorage": "U8", "BoolStorage": "U8", "Float8_e4m3fnStorage": "F8_E4M3",
    "Float8_e5m2Storage": "F8_E5M2",
}  # fmt: skip
_CONVERT = torchzip.CONVERT


class _Sealed:
    """A stand-in whose fields are set once, when validated: pickle's BUILD is refused."""

    def __setstate__(self, state: object) -> None:
        """BUILD on a stand-in (which would change it after its checks): refused."""
        raise InputError(
            "PyTorch checkpoint: data.pkl changes a tensor or storage after building it.",
            hint="the file may be malicious; use a safetensors export from a trusted source.",
        )


@dataclass(frozen=True)
class _StorageType(_Sealed):
    """Stand-in for a torch storage class (not callable)."""

    dtype: str


@dataclass(frozen=True)
class _Storage(_Sealed):
    """A storage: its dtype and its zip member's key."""

    dtype: str
    key: str
    numel: int


@dataclass(frozen=True)
class _Tensor(_Sealed):
    """A rebuilt tensor: storage, element offset, shape (contiguity checked)."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]


def _ints(value: object, what: str) -> tuple[int, ...]:
    """A tuple of non-negative ints."""
    if not isinstance(value, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise InputError(f"PyTorch checkpoint: {what} is not a tuple of sizes.", hint=_CONVERT)
    return value


def _contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """Row-major strides (dimensions of size 1 may have any stride)."""
    step = 1
    for d, s in zip(reversed(shape), reversed(strides), strict=True):
        if d > 1 and s != step:
            return False
        step *= d
    return True


def _rebuild_tensor(
    storage: object, offset: object, size: object, stride: object, *_: object
) -> _Tensor:
    """Stand-in for torch._utils._rebuild_tensor_v2: validate and describe, never allocate."""
    if not isinstance(storage, _Storage) or not isinstance(offset, int) or offset < 0:
        raise InputError("PyTorch checkpoint: a tensor has no valid storage.", hint=_CONVERT)
    shape, strides = _ints(size, "a tensor size"), _ints(stride, "a tensor stride")
    if len(strides) != len(shape) or not _contiguous(shape, strides):
        raise InputError(
            "PyTorch checkpoint: a tensor is stored non-contiguously (a transposed view).",
            hint="re-save it with tensor.contiguous(), or convert it to safetensors.",
        )
    if offset + prod(shape) > storage.numel:
        raise InputError("PyTorch checkpoint: a tensor runs past its storage.", hint=_CONVERT)
    if not fits_numpy(shape, DTYPES[storage.dtype].itemsize):  # a zero size beside huge ones
        raise InputError(
            f"PyTorch checkpoint: a tensor's shape {shape[:4]}... has more than {MAX_NDIM} "
            "sizes or spans more than 2^62 bytes.",
            hint=_CONVERT,
        )
    return _Tensor(storage, offset, shape)


def _rebuild_parameter(data: object, *_: object) -> object:
    """Stand-in for torch._utils._rebuild_parameter: the tensor itself."""
    return data


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGES.items()},
}


class _Unpickler(pickle.Unpickler):
    """Only the allow-listed globals; storages resolved to zip members by key."""

    def __init__(self, data: bytes, members: dict[str, zipfile.ZipInfo], prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self.members, self.prefix = members, prefix

    def find_class(self, module: str, name: str) -> Any:
        """Refuse every global outside the allow-list, naming it."""
        found = _ALLOWED.get((module, name))
        if found is None:
            raise InputError(
                f"PyTorch checkpoint refers to {module}.{name}, which is not needed to "
                "rebuild tensors; it was refused and nothing in the file was run.",
                hint="the file may be malicious; use a safetensors export from a trusted source.",
            )
        return found

    def persistent_load(self, pid: Any) -> _Storage:
        """('storage', type, key, location, numel) -> a storage of a zip member."""
        ok = isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
        if not ok or not isinstance(pid[1], _StorageType) or not isinstance(pid[2], str):
            raise InputError("PyTorch checkpoint: a storage reference is malformed.", hint=_CONVERT)
        if f"{self.prefix}data/{pid[2]}" not in self.members or not isinstance(pid[4], int):
            raise InputError(
                f"PyTorch checkpoint: storage {pid[2][:40]!r} has no data member.", hint=_CONVERT
            )
        return _Storage(pid[1].dtype, pid[2], pid[4])


def _flatten(obj: object, prefix: str = "", depth: int = 0) -> dict[str, _Tensor]:
    """Tensors of a (possibly nested) dict by dotted name; other leaves are ignored."""
    if isinstance(obj, _Tensor):
        return {prefix.rstrip("."): obj}
    if not isinstance(obj, dict) or depth > 4:
        return {}
    for wrapper in ("state_dict", "model", "module"):
        if set(obj) >= {wrapper} and isinstance(obj[wrapper], dict) and not prefix:
            return _flatten(obj[wrapper], "", depth + 1)
    out: dict[str, _Tensor] = {}
    for k, v in obj.items():
        out.update(_flatten(v, f"{prefix}{k}.", depth + 1))
    return out


def _load(path: Path, fd: int) -> dict[str, TensorInfo]:
    """Parse the zip and its pickle; tensor entries with absolute byte ranges."""
    source = str(path)
    members = torchzip.directory(fd, source)
    pkl = [n for n in members if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise InputError(f"{source} is a zip but not a torch.save checkpoint.", hint=_CONVERT)
    prefix = pkl[0][: -len("data.pkl")]
    order = members.get(f"{prefix}byteorder")
    endian = b"" if order is None else torchzip.read_member(fd, order, 16, source).strip()
    if endian not in (b"little", b""):
        raise InputError(f"{source} was saved big-endian.", hint=_CONVERT)
    data = torchzip.read_member(fd, members[pkl[0]], MAX_PICKLE_BYTES, source)
    check_pickle(data, source)
    try:
        root = _Unpickler(data, members, prefix).load()
    except InputError:
        raise
    except Exception as exc:  # a malformed pickle (bad opcodes, truncated, wrong types)
        raise InputError(
            f"{source}: data.pkl is malformed ({str(exc)[:100]}).", hint=_CONVERT
        ) from None
    out: dict[str, TensorInfo] = {}
    starts: dict[str, int] = {}  # a storage's first byte (views of one storage share it)
    for name, t in sorted(_flatten(root).items()):
        member = members[f"{prefix}data/{t.storage.key}"]
        item = DTYPES[t.storage.dtype].itemsize
        if t.storage.numel * item > member.file_size:
            raise InputError(f"{source}: storage {t.storage.key} is short.", hint=_CONVERT)
        if member.filename not in starts:
            starts[member.filename] = torchzip.locate(fd, member, source).begin
        begin = starts[member.filename] + t.offset * item
        out[name] = TensorInfo(name, t.storage.dtype, t.shape, begin, begin + prod(t.shape) * item)
    return out


class TorchFile:
    """A PyTorch zip checkpoint read with pread; tensors are byte ranges of storage members."""

    local = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = files.open_fd(path, "Checkpoint file")  # regular files only
        try:
            self._tensors = _load(path, self._fd)
        except BaseException:
            self.close()
            raise

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        """Tensor entries by state-dict name."""
        return self._tensors

    def span(self, info: TensorInfo) -> tuple[int, int]:
        """Absolute byte range of a tensor."""
        return info.begin, info.end

    def pooled(self, info: TensorInfo) -> bool:
        """Stored words, as they are."""
        return True

    def read_into(self, info: TensorInfo, start: int, count: int, out: Array) -> Array:
        """pread `count` elements from element `start` into `out`; a typed view."""
        item = info.np_dtype.itemsize
        view = out[: count * item]
        mv, done, offset = view.data.cast("B"), 0, info.begin + start * item
        while done < len(mv):
            if self._fd is None:
                raise InputError(f"{self.path} is closed.", hint="report this bug.")
            got = os.preadv(self._fd, [mv[done:]], offset + done)
            if got <= 0:
                raise InputError(f"{self.path} ended early.", hint="check the file is complete.")
            done += got
        return view.view(info.np_dtype)

    def read(self, name: str, start: int = 0, count: int | None = None) -> Array:
        """Copy `count` elements (default: all) of a tensor, flattened."""
        return read_whole(self, name, start, count)

    def prefetch(self, info: TensorInfo, start: int = 0, count: int | None = None) -> None:
        """Ask the kernel to read a tensor ahead."""
        if self._fd is not None and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._fd, info.begin, info.end - info.begin, os.POSIX_FADV_WILLNEED)

    def close(self) -> None:
        """Close the descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
