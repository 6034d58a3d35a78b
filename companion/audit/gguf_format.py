"""A strict GGUF v2/v3 header parser that validates every count and length before allocating.

The `gguf` package's own reader memory-maps the file and trusts its counts (a string length
of 2^63 or a tensor count beyond the file reaches numpy as an allocation or a long loop), so
the header is parsed here: every length is checked against the bytes left in the file, every
array count against the smallest size its elements could have, every tensor against the data
section. Only the block-size tables and the dequantizers come from `gguf`.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from functools import cache
from math import prod
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from companion import files
from companion.errors import InputError

MAGIC = b"GGUF"
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_DEPTH = 3  # arrays of arrays of arrays
MAX_KEY = 1 << 16
MAX_LIST = 1 << 12  # longest numeric array kept as a list (per-layer values); longer: ndarray
DEFAULT_ALIGNMENT = 32
_HINT = "the file is not a valid GGUF checkpoint; re-download or re-convert it."

# GGUF metadata value types: id -> (struct format, size); 8 = string, 9 = array.
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}  # fmt: skip
_NUMPY = {0: "u1", 1: "i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?"} | {
    10: "<u8",
    11: "<i8",
    12: "<f8",
}
_STRING, _ARRAY = 8, 9
_MIN_SIZE = {**{t: s for t, (_, s) in _SCALARS.items()}, _STRING: 8, _ARRAY: 12}


class ByteSource(Protocol):
    """What the parser reads: a length (the file's size) and byte slices (a map, bytes, ...)."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: slice, /) -> bytes: ...


@dataclass(frozen=True)
class RawTensor:
    """One tensor info: name, ggml dims (innermost first), type and absolute byte range."""

    name: str
    dims: tuple[int, ...]
    qtype: int
    begin: int
    end: int

    @property
    def type_name(self) -> str:
        """The ggml type name (Q4_1, F16, ...)."""
        from gguf.constants import GGMLQuantizationType

        return GGMLQuantizationType(self.qtype).name

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape in row-major (PyTorch/HF) order."""
        return tuple(reversed(self.dims))


@dataclass(frozen=True)
class GGUFHeader:
    """A validated header: version, metadata, tensors and where the data section starts."""

    version: int
    metadata: dict[str, Any]
    tensors: list[RawTensor]
    data_start: int
    file_size: int

    @property
    def arch(self) -> str:
        """general.architecture ("" when absent)."""
        value = self.metadata.get("general.architecture", "")
        return value if isinstance(value, str) else ""


class _Cursor:
    """Bounded little-endian reads over a memory map; every read checks the bytes left."""

    def __init__(self, buf: ByteSource, source: str) -> None:
        self.buf, self.pos, self.source = buf, 0, source
        self.size = len(buf)

    def bad(self, message: str) -> InputError:
        """An InputError about this file."""
        return InputError(f"{self.source}: {message}", hint=_HINT)

    def take(self, n: int, what: str) -> bytes:
        """The next n bytes (an error naming `what` if the file ends first)."""
        if n < 0 or n > self.size - self.pos:
            raise self.bad(f"{what} at byte {self.pos} needs {n} bytes; the file ends first.")
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def scalar(self, fmt: str, size: int, what: str) -> Any:
        """One struct-packed scalar."""
        return struct.unpack(fmt, self.take(size, what))[0]

    def u32(self, what: str) -> int:
        """A uint32."""
        return int(self.scalar("<I", 4, what))

    def u64(self, what: str) -> int:
        """A uint64."""
        return int(self.scalar("<Q", 8, what))

    def string(self, what: str, limit: int | None = None) -> str:
        """A length-prefixed UTF-8 string (length checked; invalid bytes kept as \\xNN escapes)."""
        n = self.u64(f"{what} length")
        if limit is not None and n > limit:
            raise self.bad(f"{what} is {n} bytes long (limit {limit}).")
        return self.take(n, what).decode("utf-8", errors="backslashreplace")

    def count(self, n: int, min_size: int, what: str) -> int:
        """Refuse a count whose elements could not fit in the rest of the file."""
        if n * min_size > self.size - self.pos:
            left = self.size - self.pos
            raise self.bad(f"{what} claims {n} entries; only {left} bytes are left in the file.")
        return n

    def value(self, vtype: int, what: str, depth: int = 0) -> Any:
        """One metadata value of GGUF type `vtype`."""
        if vtype in _SCALARS:
            return self.scalar(*_SCALARS[vtype], what)
        if vtype == _STRING:
            return self.string(what)
        if vtype != _ARRAY:
            raise self.bad(f"{what} has unknown value type {vtype}.")
        if depth >= MAX_DEPTH:
            raise self.bad(f"{what} nests arrays more than {MAX_DEPTH} deep.")
        etype = self.u32(f"{what} element type")
        if etype not in _MIN_SIZE:
            raise self.bad(f"{what} has unknown element type {etype}.")
        n = self.count(self.u64(f"{what} count"), _MIN_SIZE[etype], what)
        if etype in _NUMPY:  # numbers: one bounded copy; a list only when short (per-layer
            # values), else a read-only array: a list takes 32 bytes per 4-byte float
            numbers = np.frombuffer(self.take(n * _SCALARS[etype][1], what), dtype=_NUMPY[etype])
            return numbers.tolist() if n <= MAX_LIST else numbers
        return [self.value(etype, what, depth + 1) for _ in range(n)]


def _tensor(cur: _Cursor) -> tuple[str, tuple[int, ...], int, int]:
    """One tensor info entry: name, dims, type, relative offset (validated shape and type)."""
    name = cur.string("tensor name", MAX_KEY)
    n_dims = cur.u32(f"tensor {name[:80]!r} dimension count")
    if not 1 <= n_dims <= MAX_DIMS:
        raise cur.bad(f"tensor {name[:80]!r} has {n_dims} dimensions (1 to {MAX_DIMS}).")
    dims = tuple(cur.u64(f"tensor {name[:80]!r} dimension") for _ in range(n_dims))
    qtype = cur.u32(f"tensor {name[:80]!r} type")
    if qtype not in _quant_sizes():
        raise cur.bad(f"tensor {name[:80]!r} has unknown ggml type {qtype}.")
    offset = cur.u64(f"tensor {name[:80]!r} offset")
    return name, dims, qtype, offset


@cache
def _quant_sizes() -> dict[int, tuple[int, int]]:
    """(block size, bytes per block) of each ggml type, from the gguf package (imported here,
    on the first GGUF read: sniffing a safetensors file for the magic must not load it)."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(t.value): size for t, size in GGML_QUANT_SIZES.items()}


def _layout(cur: _Cursor, entries: list[Any], data_start: int, align: int) -> list[RawTensor]:
    """Check every tensor's size, alignment and bounds, and that no two overlap."""
    out: list[RawTensor] = []
    data_len = cur.size - data_start
    for name, dims, qtype, offset in entries:
        where = f"tensor {name[:80]!r}"
        block, type_size = _quant_sizes()[qtype]
        if any(d > data_len * block for d in dims) or dims[0] % block:
            raise cur.bad(f"{where} has dims {list(dims)} that do not fit its type's blocks.")
        nbytes = prod(dims) // block * type_size
        if offset % align or offset + nbytes > data_len:
            raise cur.bad(
                f"{where} spans bytes {offset}..{offset + nbytes} of a {data_len}-byte data "
                f"section (alignment {align})."
            )
        out.append(RawTensor(name, dims, qtype, data_start + offset, data_start + offset + nbytes))
    cursor = 0
    for t in sorted(out, key=lambda t: (t.begin, t.end)):
        if t.begin < cursor:
            raise cur.bad(f"tensor {t.name[:80]!r} overlaps the previous tensor.")
        cursor = max(cursor, t.end)
    return out


def parse(buf: ByteSource, source: str) -> GGUFHeader:
    """Parse and validate a GGUF header from the whole file's bytes (a map, or fetched lazily)."""
    cur = _Cursor(buf, source)
    if cur.size < 4 or cur.take(4, "magic") != MAGIC:
        raise cur.bad("it does not start with the GGUF magic bytes.")
    version = cur.u32("version")
    if version not in (2, 3):
        raise InputError(
            f"{source}: GGUF version {version} is not supported (2 and 3 are).",
            hint="re-convert the model with a current llama.cpp (convert_hf_to_gguf.py).",
        )
    n_tensors = cur.count(cur.u64("tensor count"), 24, "the tensor count")
    n_kv = cur.count(cur.u64("metadata count"), 13, "the metadata count")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string("metadata key", MAX_KEY)
        if key in metadata:
            raise cur.bad(f"duplicate metadata key {key[:80]!r}.")
        metadata[key] = cur.value(cur.u32(f"metadata {key[:80]!r} type"), f"metadata {key[:80]!r}")
    entries, names = [], set()
    for _ in range(n_tensors):
        entry = _tensor(cur)
        if entry[0] in names:
            raise cur.bad(f"duplicate tensor name {entry[0][:80]!r}.")
        names.add(entry[0])
        entries.append(entry)
    align = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(align, int) or isinstance(align, bool) or align <= 0 or align & (align - 1):
        raise cur.bad(f"general.alignment {align!r} is not a power of two.")
    data_start = -(-cur.pos // align) * align
    if data_start > cur.size:
        raise cur.bad("the data section starts past the end of the file.")
    tensors = _layout(cur, entries, data_start, align)
    return GGUFHeader(version, metadata, tensors, data_start, cur.size)


def read_header(path: Path) -> GGUFHeader:
    """Open, map and parse a GGUF file's header (the map is closed before returning)."""
    fd = files.open_fd(path, "GGUF file")  # regular files only: never blocks on a FIFO
    try:
        size = os.fstat(fd).st_size
        if size < 24:
            raise InputError(f"{path}: only {size} bytes; not a GGUF file.", hint=_HINT)
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as buf:
            return parse(buf, str(path))
    finally:
        os.close(fd)


def is_gguf(path: Path) -> bool:
    """Whether a file starts with the GGUF magic."""
    try:
        with files.open_regular(path, "File") as fh:
            return fh.read(4) == MAGIC
    except (OSError, InputError):  # not readable, or not a regular file: not ours to sniff
        return False
