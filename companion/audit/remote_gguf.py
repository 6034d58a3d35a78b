"""Remote GGUF files: the header read by range (a growing prefix), tensors by their ranges.

The strict GGUF parser (`gguf_format.parse`) reads through a prefix buffer whose length is
the remote file's size: every count and length is still checked against the whole file, and
bytes are fetched (through the range cache) only as far as the parser actually reads, at
least 1 MB at a time and never beyond MAX_HEADER_BYTES. Tensor bytes then come from the
ranges `plan` names, like remote safetensors; dequantizing and the Q/K re-ordering are the
local GGUF reader's.
"""

from __future__ import annotations

import numpy as np

from companion.audit.gguf import GGUFFile
from companion.audit.gguf_format import parse
from companion.audit.remote_file import RemoteFile
from companion.audit.remote_http import Blob
from companion.audit.safetensors import TensorInfo
from companion.audit.source import Array
from companion.errors import InputError

FIRST_BYTES = 1 << 20
MAX_HEADER_BYTES = 256 << 20  # metadata and tensor infos; llama.cpp files stay far below


class _Prefix:
    """The file's first bytes, fetched on demand; `len` is the whole file's size."""

    def __init__(self, blob: Blob) -> None:
        self.blob, self.data = blob, b""

    def __len__(self) -> int:
        return self.blob.size

    def __getitem__(self, key: slice, /) -> bytes:
        stop = self.blob.size if key.stop is None else key.stop
        if stop > len(self.data):
            self._grow(stop)
        return self.data[key]

    def _grow(self, stop: int) -> None:
        """Fetch up to `stop` (doubling, at least FIRST_BYTES), within MAX_HEADER_BYTES."""
        if stop > MAX_HEADER_BYTES:
            raise InputError(
                f"{self.blob.url}: the GGUF header runs past {MAX_HEADER_BYTES >> 20} MB.",
                hint="the file is not a usable GGUF checkpoint; check the URL.",
            )
        want = min(self.blob.size, MAX_HEADER_BYTES, max(stop, 2 * len(self.data), FIRST_BYTES))
        self.data += self.blob.read(len(self.data), want)


class RemoteGGUF(RemoteFile, GGUFFile):
    """A GGUF file behind a URL: validated header by range, tensors from the range cache."""

    def __init__(self, blob: Blob, revision: str | None) -> None:
        self._remote(blob, revision)
        self._fd = None
        self._register(parse(_Prefix(blob), blob.url))

    def span(self, info: TensorInfo) -> tuple[int, int]:
        """The stored bytes of a tensor in the remote file."""
        return GGUFFile.span(self, info)

    def _pread(self, offset: int, n: int) -> Array:
        """Exactly n bytes at offset, from the range cache (fetched if missing)."""
        out = np.empty(n, dtype=np.uint8)
        self.blob.read_into(offset, out.data)
        return out
