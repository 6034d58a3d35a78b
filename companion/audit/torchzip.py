"""The zip layer of PyTorch checkpoints, read with pread and never through zipfile's readers.

`torch.save` stores every member uncompressed. `zipfile` here only parses the central
directory; no member is read through it, because its readers inflate a whole member before
cutting it to the declared size (785 bytes of bzip2 became a gigabyte) and raise CRC, EOF,
encryption and codec errors of their own. A member is used only when it is stored, not
encrypted, its local header agrees with the central directory (magic, name, method) and its
bytes lie inside the file. The archive must start at byte 0 with a member and name each
member once, as torch.save writes it, so the tensors read are the ones torch would load.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from companion import files
from companion.errors import InputError

MAGIC = b"PK\x03\x04"
CONVERT = (
    "convert it to safetensors where running its code is safe (a throw-away sandbox): "
    "torch.load(path, weights_only=True), then safetensors.torch.save_file(...)."
)
_CORRUPT = (
    "check the file is complete (compare its size or sha256 with its source, or fetch it again)."
)
_METHODS = {8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd", 99: "AES"}
_BROKEN_ZIP = (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error, OverflowError)


@dataclass(frozen=True)
class Member:
    """A stored member's bytes: where they start in the file, how many, their CRC-32."""

    name: str
    begin: int
    size: int
    crc: int


def _shown(name: str) -> str:
    """A member name fit for a message (cut short, control characters escaped)."""
    return repr(name[:80])


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """Whether a file's first 9 bytes are a safetensors length prefix and the JSON's `{`."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8


def is_safetensors(path: Path) -> bool:
    """Whether a file (whatever its name) starts like a safetensors file."""
    try:
        with files.open_regular(path, "File") as fh:
            head = fh.read(9)
            return looks_like_safetensors(head, os.fstat(fh.fileno()).st_size)
    except (OSError, InputError):  # not readable, or not a regular file: not ours to sniff
        return False


def _not_a_zip(head: bytes, size: int, source: str) -> InputError:
    """Why a file without the zip magic at byte 0 is not a torch.save checkpoint."""
    if head[:1] == b"\x80":  # pickle's PROTO opcode: the format before torch 1.6
        return InputError(f"{source} is a legacy (non-zip) PyTorch pickle.", hint=CONVERT)
    if looks_like_safetensors(head, size):
        return InputError(
            f"{source} is a safetensors file with a PyTorch name.",
            hint="rename it to .safetensors.",
        )
    return InputError(
        f"{source} is not a PyTorch checkpoint (neither a zip nor a pickle; {size} bytes).",
        hint=f"pass a torch.save file, a safetensors file or a GGUF file; {_CORRUPT}",
    )


def directory(fd: int, source: str) -> dict[str, zipfile.ZipInfo]:
    """The members of a torch.save zip by name, from its central directory alone."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, 9, 0)
    if head[:4] != MAGIC:
        raise _not_a_zip(head, size, source)
    try:
        with os.fdopen(os.dup(fd), "rb") as fh, zipfile.ZipFile(fh) as zf:
            infos = zf.infolist()
    except _BROKEN_ZIP as exc:
        raise InputError(
            f"{source} is a truncated or corrupt zip ({str(exc)[:100]}).", hint=_CORRUPT
        ) from None
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:  # torch's reader would pick one of two same-named members: which?
        if info.filename in members:
            raise InputError(
                f"{source} holds two zip members named {_shown(info.filename)}.", hint=CONVERT
            )
        members[info.filename] = info
    if infos and min(i.header_offset for i in infos) != 0:
        raise InputError(
            f"{source}: its first zip member is not at byte 0 (a prefix, a second archive "
            "or a wrong directory offset).",
            hint=CONVERT,
        )
    return members


def locate(fd: int, info: zipfile.ZipInfo, source: str) -> Member:
    """A stored member's bytes, after checking its local header agrees with the directory."""
    name = _shown(info.filename)
    if info.flag_bits & 0x1:
        raise InputError(f"{source}: zip member {name} is encrypted.", hint=CONVERT)
    if info.compress_type != zipfile.ZIP_STORED:
        method = _METHODS.get(info.compress_type, f"method {info.compress_type}")
        raise InputError(
            f"{source}: zip member {name} is compressed ({method}); torch.save stores "
            "members uncompressed, and compressed ones are not read.",
            hint=CONVERT,
        )
    if info.compress_size != info.file_size:
        raise InputError(
            f"{source}: zip member {name} is stored but its sizes disagree "
            f"({info.compress_size} vs {info.file_size} bytes).",
            hint=_CORRUPT,
        )
    size = os.fstat(fd).st_size
    head = os.pread(fd, 30, info.header_offset) if 0 <= info.header_offset < size else b""
    if len(head) < 30 or head[:4] != MAGIC:
        raise InputError(f"{source}: the zip header of member {name} is corrupt.", hint=_CORRUPT)
    method, n, m = struct.unpack("<H", head[8:10])[0], *struct.unpack("<HH", head[26:30])
    raw = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
    if method != zipfile.ZIP_STORED or os.pread(fd, n, info.header_offset + 30) != raw:
        raise InputError(
            f"{source}: the zip header of member {name} disagrees with the central directory.",
            hint=_CORRUPT,
        )
    begin = info.header_offset + 30 + n + m
    if begin + info.file_size > size:
        raise InputError(f"{source}: zip member {name} runs past the file.", hint=_CORRUPT)
    return Member(info.filename, begin, info.file_size, info.CRC)


def read_member(fd: int, info: zipfile.ZipInfo, cap: int, source: str) -> bytes:
    """The bytes of a small stored member (at most `cap`), checked against its CRC-32."""
    if info.file_size > cap:
        raise InputError(
            f"{source}: zip member {_shown(info.filename)} is {info.file_size:,} bytes, "
            f"over the {cap:,} byte limit.",
            hint=CONVERT,
        )
    member = locate(fd, info, source)
    data = bytearray()
    while len(data) < member.size:
        got = os.pread(fd, member.size - len(data), member.begin + len(data))
        if not got:
            raise InputError(f"{source} ended early.", hint=_CORRUPT)
        data += got
    if zlib.crc32(data) != member.crc:
        raise InputError(
            f"{source}: zip member {_shown(info.filename)} fails its CRC-32 check.", hint=_CORRUPT
        )
    return bytes(data)
