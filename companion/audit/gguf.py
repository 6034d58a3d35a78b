"""GGUF checkpoints as audit tensor files: HF names, HF layout, float32 chunks from any block type.

F32/F16/BF16 tensors in their stored layout are read like safetensors (pread of the stored
words, servable from the shared reader's pool). Quantized tensors are dequantized block by
block with `gguf.quants.dequantize`: a chunk of elements maps to the whole blocks covering
it, so memory stays bounded by the chunk. Q/K of llama-style models have their rotary row
permutation undone (within each head), and stacked expert tensors are split into one tensor
per expert, so names and layouts match a Hugging Face checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize

from companion import files
from companion.audit.gguf_format import GGUFHeader, RawTensor, read_header
from companion.audit.gguf_names import expert_name, hf_name, rotary_heads
from companion.audit.safetensors import TensorInfo
from companion.audit.source import Array, read_whole
from companion.errors import InputError

_DIRECT = {"F32", "F16", "BF16"}
_F32 = np.dtype("<f4")
# Each expert of a stacked tensor becomes a tensor of its own; holding at least as many bytes
# as a tensor info entry, splitting costs no more per byte of file than listing them would.
MIN_EXPERT_BYTES = 64


@dataclass(frozen=True)
class DecodedInfo(TensorInfo):
    """A tensor handed out as float32 (dequantized or re-ordered); `dtype` names the stored type."""

    @property
    def np_dtype(self) -> np.dtype[Any]:
        """Chunks come out as float32 whatever the stored type."""
        return _F32


@dataclass(frozen=True)
class Stored:
    """Where a tensor's blocks live and how to turn them back into HF layout."""

    qtype: GGMLQuantizationType
    begin: int
    end: int
    cols: int
    rows: int
    heads: int  # > 0: undo the rotary Q/K row permutation over this many heads

    @property
    def block(self) -> tuple[int, int]:
        """(elements, bytes) per block."""
        return GGML_QUANT_SIZES[self.qtype]


def _dequantizable(raw: RawTensor, source: str) -> GGMLQuantizationType:
    """The tensor's type, if the gguf package can dequantize it."""
    qtype = GGMLQuantizationType(raw.qtype)
    try:  # a one-block probe: unsupported types raise NotImplementedError
        dequantize(np.zeros(GGML_QUANT_SIZES[qtype][1], dtype=np.uint8), qtype)
    except NotImplementedError:
        raise InputError(
            f"{source}: tensor {raw.name!r} uses block type {qtype.name}, which cannot be "
            "dequantized here.",
            hint="audit a GGUF in F16/BF16/Q8_0/Q4_x/Q5_x/Q2_K..Q6_K, or the original weights.",
        ) from None
    return qtype


def _expert_parts(
    raw: RawTensor, source: str
) -> list[tuple[str, int, int, tuple[int, ...]]] | None:
    """One (name, begin, end, shape) per expert of a stacked tensor (None if not stacked)."""
    if len(raw.dims) != 3 or expert_name(raw.name, 0) is None:
        return None
    n, shape = raw.dims[2], tuple(raw.dims[1::-1])
    step = (raw.end - raw.begin) // max(n, 1)
    if step < MIN_EXPERT_BYTES:
        raise InputError(
            f"{source}: tensor {raw.name[:80]!r} stacks {n} experts of {step} bytes each "
            f"(at least {MIN_EXPERT_BYTES} bytes per expert).",
            hint="the file is not a valid GGUF checkpoint; re-download or re-convert it.",
        )
    out = []
    for e in range(n):
        name = expert_name(raw.name, e)
        assert name is not None
        out.append((name, raw.begin + e * step, raw.begin + (e + 1) * step, shape))
    return out


class GGUFFile:
    """A validated GGUF file read with pread; quantized tensors come out as float32 chunks."""

    local = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._register(read_header(path))
        self._fd: int | None = files.open_fd(path, "Checkpoint file")  # regular files only

    def _register(self, header: GGUFHeader) -> None:
        """Take a parsed header: every tensor under its HF name, with its stored layout."""
        self.header = header
        self.stored: dict[str, Stored] = {}
        self._tensors: dict[str, TensorInfo] = {}
        self.original: dict[str, str] = {}
        for raw in header.tensors:
            self._add(raw)

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        """Tensor entries by Hugging Face name."""
        return self._tensors

    @property
    def metadata(self) -> dict[str, Any]:
        """The GGUF key/value metadata."""
        return self.header.metadata

    def _add(self, raw: RawTensor) -> None:
        """Register one GGUF tensor (or its experts) under HF names."""
        arch, meta = self.header.arch, self.header.metadata
        qtype = _dequantizable(raw, str(self.path))
        parts = _expert_parts(raw, str(self.path)) or [
            (hf_name(raw.name, arch), raw.begin, raw.end, raw.shape)
        ]
        heads = rotary_heads(raw.name, arch, meta)
        for name, begin, end, shape in parts:
            if name in self._tensors:
                raise InputError(
                    f"{self.path}: two tensors map to the name {name!r}.",
                    hint="the GGUF has duplicate or conflicting tensor names; re-convert it.",
                )
            cols = shape[-1] if len(shape) >= 2 else 1
            rows = prod(shape) // cols if cols else 0
            if heads and (rows % (2 * heads)):
                heads = 0  # not a whole number of heads: leave the layout as stored
            self.original[name] = raw.name
            self.stored[name] = Stored(qtype, begin, end, cols, rows, heads)
            if qtype.name in _DIRECT and not heads:
                self._tensors[name] = TensorInfo(name, qtype.name, shape, begin, end)
            else:
                numel = prod(shape)
                self._tensors[name] = DecodedInfo(name, qtype.name, shape, begin, begin + numel * 4)

    def span(self, info: TensorInfo) -> tuple[int, int]:
        """The stored bytes of a tensor in the file."""
        s = self.stored[info.name]
        return s.begin, s.end

    def pooled(self, info: TensorInfo) -> bool:
        """Plain F32/F16/BF16 tensors in stored layout can be served from the pool."""
        return not isinstance(info, DecodedInfo)

    def _pread(self, offset: int, n: int) -> Array:
        """Exactly n bytes at offset."""
        if self._fd is None:
            raise InputError(f"{self.path} is closed.", hint="report this bug.")
        buf = np.empty(n, dtype=np.uint8)
        view, done = buf.data.cast("B"), 0
        while done < n:
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got <= 0:
                raise InputError(
                    f"{self.path} ended early (it changed while being read).",
                    hint="make sure the file is not being written, then retry.",
                )
            done += got
        return buf

    def _decode(self, s: Stored, first: int, last: int) -> Array:
        """Elements [first, last) in stored order as float32 (both on block boundaries)."""
        bs, ts = s.block
        raw = self._pread(s.begin + first // bs * ts, (last - first) // bs * ts)
        return np.asarray(dequantize(raw, s.qtype), dtype=np.float32).reshape(-1)

    def _rows(self, s: Stored, r0: int, r1: int) -> Array:
        """Rows [r0, r1) in HF order: whole heads decoded, then each head's rows re-ordered.

        llama.cpp stores row h*hd + 2*j + i for HF row h*hd + i*hd/2 + j (i in {0, 1}): the
        two rotary halves of each head interleaved.
        """
        hd = s.rows // s.heads
        h0, h1 = r0 // hd * hd, -(-r1 // hd) * hd
        block = self._decode(s, h0 * s.cols, h1 * s.cols).reshape(-1, s.cols)
        head, within = np.divmod(np.arange(r0 - h0, r1 - h0), hd)
        i, j = np.divmod(within, hd // 2)
        out: Array = block[head * hd + 2 * j + i]
        return out

    def read_into(self, info: TensorInfo, start: int, count: int, out: Array) -> Array:
        """Read `count` elements from `start` into the byte buffer `out`; a typed view."""
        s = self.stored[info.name]
        nbytes = count * info.np_dtype.itemsize
        view = out[:nbytes]
        if count == 0:
            return view.view(info.np_dtype)
        if not isinstance(info, DecodedInfo):
            view[:] = self._pread(info.begin + start * info.np_dtype.itemsize, nbytes)
            return view.view(info.np_dtype)
        if s.heads:
            r0, r1 = start // s.cols, -(-(start + count) // s.cols)
            values = self._rows(s, r0, r1).reshape(-1)[start - r0 * s.cols :][:count]
        else:
            bs = s.block[0]
            first, last = start // bs * bs, -(-(start + count) // bs) * bs
            values = self._decode(s, first, last)[start - first :][:count]
        typed = view.view(np.float32)
        typed[:] = values
        return typed

    def read(self, name: str, start: int = 0, count: int | None = None) -> Array:
        """Copy `count` elements (default: all) of a tensor, flattened."""
        return read_whole(self, name, start, count)

    def prefetch(self, info: TensorInfo, start: int = 0, count: int | None = None) -> None:
        """Ask the kernel to read the tensor's stored bytes ahead (approximately)."""
        if self._fd is not None and hasattr(os, "posix_fadvise"):
            begin, end = self.span(info)
            os.posix_fadvise(self._fd, begin, end - begin, os.POSIX_FADV_WILLNEED)

    def close(self) -> None:
        """Close the descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
