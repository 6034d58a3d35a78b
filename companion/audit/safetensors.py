"""A strict safetensors header parser and a chunked tensor reader (pread into reusable buffers).

Validation happens before any allocation sized by the file's own claims: the header length is
checked against the file size and a 100 MB cap, then the JSON, then every tensor's dtype,
shape and offsets (in bounds, non-overlapping, contiguous, dtype x shape == byte size).
"""

from __future__ import annotations

import gc
import json
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from companion import files
from companion.errors import InputError

MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_NDIM = 32
MAX_EXTENT = 1 << 62  # numpy refuses shapes whose non-zero sizes span more bytes than int64


def _words(name: str, size: int) -> np.dtype[Any]:
    """Stored words of a float format numpy lacks: a void dtype, which nothing can cast to float
    by mistake, tagged with its safetensors name for `decode` (no ml_dtypes import: its
    extension costs about half a second at every start)."""
    return np.dtype(f"V{size}", metadata={"safetensors": name})


# safetensors dtype name -> numpy dtype (little-endian, as the format stores them).
DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": _words("BF16", 2),
    "F8_E4M3": _words("F8_E4M3", 1),
    "F8_E5M2": _words("F8_E5M2", 1),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
}
# what the writer stores arrays of ml_dtypes' types as (named, so it need not import them)
_ML_DTYPES = {"bfloat16": "BF16", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}

_HINT = "the file is not a valid safetensors checkpoint; re-download or re-export it."


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's header entry: dtype, shape and byte range inside the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        """Number of elements."""
        return prod(self.shape)

    @property
    def np_dtype(self) -> np.dtype[Any]:
        """The numpy dtype of the stored elements."""
        return DTYPES[self.dtype]


@dataclass(frozen=True)
class Header:
    """A validated header: tensors by name, metadata and where the data section starts."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int
    data_len: int


def _bad(source: str, message: str) -> InputError:
    """An InputError about a malformed file."""
    return InputError(f"{source}: {message}", hint=_HINT)


def _no_duplicates(source: str) -> Any:
    """A json object_pairs_hook that refuses duplicate keys (names must be unique)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):  # rare: find the first repeated name to say which
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise _bad(source, f"duplicate name {key[:80]!r} in the header.")
                seen.add(key)
        return out

    return hook


def header_length(prefix: bytes, file_size: int, source: str = "file") -> int:
    """Validate the 8-byte length prefix against the file size and the 100 MB cap."""
    if file_size < 8 or len(prefix) < 8:
        raise _bad(source, f"only {file_size} bytes; a safetensors file starts with 8.")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n > MAX_HEADER_BYTES:
        raise _bad(source, f"header length {n} exceeds the {MAX_HEADER_BYTES} byte limit.")
    if 8 + n > file_size:
        raise _bad(source, f"header length {n} runs past the end of the file ({file_size} bytes).")
    if n < 2:
        raise _bad(source, f"header length {n} is too small to hold a JSON object.")
    return int(n)


_KEYS = {"dtype", "shape", "data_offsets"}


def _bad_entry(source: str, name: str, what: str) -> InputError:
    """An InputError about one tensor entry (its name cut short)."""
    return _bad(source, f"tensor {name[:80]!r}{what}")


def fits_numpy(shape: tuple[int, ...] | list[int], itemsize: int) -> bool:
    """Whether numpy can shape an array so: at most MAX_NDIM sizes whose non-zero ones span at
    most MAX_EXTENT bytes (numpy checks them even when another size is zero)."""
    return len(shape) <= MAX_NDIM and prod(max(d, 1) for d in shape) * itemsize <= MAX_EXTENT


def _entry(source: str, name: str, raw: object, data_len: int) -> TensorInfo:
    """Validate one tensor entry."""
    if not isinstance(raw, dict) or raw.keys() != _KEYS:
        raise _bad_entry(source, name, " must have exactly dtype, shape and data_offsets.")
    dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        known = ", ".join(DTYPES)
        raise _bad_entry(source, name, f" has unknown dtype {str(dtype)[:20]!r} (known: {known}).")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM:
        raise _bad_entry(source, name, f" shape must be a list of at most {MAX_NDIM} sizes.")
    if not all(type(d) is int and d >= 0 for d in shape):  # bools are not sizes
        raise _bad_entry(source, name, " shape must hold non-negative integers.")
    if not (type(offsets) is list and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise _bad_entry(source, name, " data_offsets must be [begin, end] integers.")
    begin, end = offsets
    if begin < 0 or end < begin:
        raise _bad_entry(source, name, f" has invalid data_offsets [{begin}, {end}].")
    if end > data_len:
        raise _bad_entry(source, name, f" data_offsets end {end} is past the end of the file.")
    nbytes = prod(shape) * DTYPES[dtype].itemsize
    if nbytes != end - begin:
        raise _bad_entry(
            source,
            name,
            f": dtype {dtype} x shape {shape} is {nbytes} bytes but its offsets "
            f"span {end - begin}.",
        )
    if not fits_numpy(shape, DTYPES[dtype].itemsize):  # a zero size beside huge ones
        raise _bad_entry(source, name, f" shape {shape[:4]}... spans more than 2^62 bytes.")
    return TensorInfo(name, dtype, tuple(shape), begin, end)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a header's objects are built: they hold
    no cycles, and its full passes over a million fresh entries tripled the time to read them."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parse_header(prefix: bytes, file_size: int, source: str = "file") -> Header:
    """Parse and validate a header from the file's first bytes (at least 8 + header length)."""
    with paused_gc():
        return _parse_header(prefix, file_size, source)


def _parse_header(prefix: bytes, file_size: int, source: str) -> Header:
    """parse_header's work."""
    n = header_length(prefix, file_size, source)
    if len(prefix) < 8 + n:
        raise _bad(source, "the header is truncated.")
    data_len = file_size - 8 - n
    try:
        text = prefix[8 : 8 + n].decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicates(source))
    except InputError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(source, f"the header is not valid JSON ({str(exc)[:120]}).") from None
    if not isinstance(obj, dict):
        raise _bad(source, "the header must be a JSON object.")
    metadata = obj.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad(source, "__metadata__ must map strings to strings.")
    tensors = {name: _entry(source, name, raw, data_len) for name, raw in obj.items()}
    cursor = 0
    for info in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if info.begin < cursor:
            raise _bad(source, f"tensor {info.name[:80]!r} overlaps the previous tensor.")
        if info.begin > cursor:
            raise _bad(source, f"a gap of unindexed bytes precedes tensor {info.name[:80]!r}.")
        cursor = info.end
    if cursor != data_len:
        raise _bad(source, f"{data_len - cursor} trailing bytes are not covered by any tensor.")
    return Header(tensors=tensors, metadata=dict(metadata), data_start=8 + n, data_len=data_len)


def word_name(dtype: np.dtype[Any]) -> str | None:
    """The safetensors name of stored words (BF16, F8_*), None for a type numpy can cast."""
    meta: dict[str, str] = dict(dtype.metadata or {})
    if "safetensors" in meta:
        return meta["safetensors"]
    if dtype.kind == "V" and dtype.name not in _ML_DTYPES:  # ml_dtypes' types cast themselves
        raise InputError(f"Stored words {dtype} lost their format.", hint="report this bug.")
    return None


def _e4m3fn_table() -> np.ndarray[Any, Any]:
    """float32 value of each of the 256 float8_e4m3fn bytes (bias 7, no infinities, S.1111.111
    is NaN)."""
    b = np.arange(256)
    exp, man = (b >> 3) & 0xF, (b & 7).astype(np.float64)
    mag = np.where(exp == 0, man / 8 * 2.0**-6, (1 + man / 8) * 2.0 ** (exp - 7.0))
    mag[(exp == 15) & (man == 7)] = np.nan
    return np.where(b >> 7, -mag, mag).astype(np.float32)


_F8_TABLES: dict[str, np.ndarray[Any, Any]] = {}


def decode(raw: np.ndarray[Any, Any], out_dtype: type[np.floating[Any]] = np.float64) -> Any:
    """Convert stored elements to float (bf16 via a bit shift, fp8 via a 256-entry table)."""
    name = word_name(raw.dtype)
    if name == "BF16":
        bits = raw.view(np.uint16).astype(np.uint32)
        bits <<= 16
        f32 = bits.view(np.float32)
        return f32 if out_dtype is np.float32 else f32.astype(out_dtype)
    if name == "F8_E5M2":  # the top byte of an IEEE half
        half = raw.view(np.uint8).astype(np.uint16) << 8
        return half.view(np.float16).astype(out_dtype)
    if name == "F8_E4M3":
        table = _F8_TABLES.get(name)
        if table is None:
            table = _F8_TABLES[name] = _e4m3fn_table()
        return table[raw.view(np.uint8)].astype(out_dtype, copy=False)
    return raw.astype(out_dtype)


def as_numbers(raw: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Stored words (bf16, fp8) as exact float32; numpy number arrays as they are."""
    return raw if word_name(raw.dtype) is None else np.asarray(decode(raw, np.float32))


def dtype_name(dtype: np.dtype[Any]) -> str | None:
    """The safetensors name an array of this dtype is stored under (None: not storable)."""
    if dtype.name in _ML_DTYPES:
        return _ML_DTYPES[dtype.name]
    if dtype.kind == "V":
        return word_name(dtype)
    return next((k for k, v in DTYPES.items() if v.kind != "V" and v == dtype), None)


class SafetensorsFile:
    """A validated safetensors file read with pread into caller buffers (no memory map).

    Reading into reusable buffers keeps resident memory flat however large the file: the
    bytes live in the page cache, not in this process.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = files.open_fd(path, "Checkpoint file")  # regular, inside any confinement
        try:
            size = os.fstat(fd).st_size
            prefix = os.pread(fd, 8, 0)
            n = header_length(prefix, size, str(path))
            prefix += os.pread(fd, n, 8)
            self.header = parse_header(prefix, size, str(path))
            self.size = size
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd

    local = True

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        """Tensor entries by name."""
        return self.header.tensors

    def span(self, info: TensorInfo) -> tuple[int, int]:
        """The bytes of the file holding a tensor."""
        return self.header.data_start + info.begin, self.header.data_start + info.end

    def pooled(self, info: TensorInfo) -> bool:
        """Stored words are read as they are: the shared reader's pool can serve them."""
        return True

    def _offset(self, info: TensorInfo, start: int) -> int:
        """File offset of element `start` of a tensor."""
        return self.header.data_start + info.begin + start * info.np_dtype.itemsize

    def _fill(self, buf: memoryview, offset: int) -> None:
        """pread exactly len(buf) bytes at offset (the file may not shrink under us)."""
        if self._fd is None:
            raise InputError(f"{self.path} is closed.", hint="report this bug.")
        done = 0
        while done < len(buf):
            got = os.preadv(self._fd, [buf[done:]], offset + done)
            if got <= 0:
                raise InputError(
                    f"{self.path} ended early (it changed while being read).",
                    hint="make sure the checkpoint is not being written, then retry.",
                )
            done += got

    def read_into(
        self, info: TensorInfo, start: int, count: int, out: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, Any]:
        """Read `count` elements from element `start` into the byte buffer `out`; a typed view."""
        nbytes = count * info.np_dtype.itemsize
        view = out[:nbytes]
        if nbytes:
            self._fill(view.data.cast("B"), self._offset(info, start))
        return view.view(info.np_dtype)

    def prefetch(self, info: TensorInfo, start: int = 0, count: int | None = None) -> None:
        """Ask the kernel to start reading a tensor range into the page cache (asynchronously)."""
        count = info.numel - start if count is None else count
        if self._fd is not None and count > 0 and hasattr(os, "posix_fadvise"):
            size = count * info.np_dtype.itemsize
            os.posix_fadvise(self._fd, self._offset(info, start), size, os.POSIX_FADV_WILLNEED)

    def read(self, name: str, start: int = 0, count: int | None = None) -> np.ndarray[Any, Any]:
        """Copy `count` elements (default: all) of a tensor, flattened."""
        info = self.tensors[name]
        count = info.numel - start if count is None else count
        if start < 0 or count < 0 or start + count > info.numel:
            raise InputError(f"Range out of bounds for tensor {name!r}.", hint="report this bug.")
        buf = np.empty(count * info.np_dtype.itemsize, dtype=np.uint8)
        return self.read_into(info, start, count, buf)

    def chunks(self, name: str, chunk: int) -> Iterator[np.ndarray[Any, Any]]:
        """Yield a tensor as consecutive flat arrays of at most `chunk` elements.

        One buffer is reused: each array is valid until the next one is requested.
        """
        info = self.tensors[name]
        buf = np.empty(min(chunk, info.numel) * info.np_dtype.itemsize, dtype=np.uint8)
        for start in range(0, info.numel, chunk):
            yield self.read_into(info, start, min(chunk, info.numel - start), buf)

    def close(self) -> None:
        """Close the file descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_safetensors(
    path: Path,
    tensors: dict[str, np.ndarray[Any, Any]] | list[tuple[str, np.ndarray[Any, Any]]],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write tensors (numpy arrays; bf16/fp8 as ml_dtypes arrays or stored words) to a file."""
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, arr in items:
        stored = dtype_name(arr.dtype)
        if stored is None:
            raise InputError(f"Cannot store dtype {arr.dtype} for {name}.", hint="cast first.")
        nbytes = arr.size * arr.dtype.itemsize
        header[name] = {
            "dtype": stored,
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for _, arr in items:
            fh.write(np.ascontiguousarray(arr).tobytes())
