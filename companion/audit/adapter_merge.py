"""`BASE+ADAPTER` as one checkpoint: each adapted tensor is merged on the fly, row chunk by row
chunk (W[rows] + scaling * B[rows] @ A), when the audit reads it; nothing else is held.

Every base file is seen through a `MergedView` that hands out untouched tensors as stored (so
the shared reader's pool still serves them) and adapted ones as float32 chunks it computes.
The adapter's own file is seen through a view that renames its whole-tensor replacements
(`modules_to_save`) to the base names they replace.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from companion.audit.adapter import Adapter, AdapterPair, LoraModule, fit, open_adapter
from companion.audit.checkpoint import Checkpoint, TensorRef, open_checkpoint
from companion.audit.remote_http import RemoteOptions
from companion.audit.safetensors import TensorInfo, decode
from companion.audit.source import TensorFile, read_whole
from companion.errors import InputError

Array = np.ndarray[Any, Any]
_F32 = np.dtype("<f4")


@dataclasses.dataclass(frozen=True)
class MergedInfo(TensorInfo):
    """An adapted tensor: handed out as float32 whatever the base stores."""

    @property
    def np_dtype(self) -> np.dtype[Any]:
        """Merged chunks are float32."""
        return _F32


class MergedView:
    """One file seen under other names, with LoRA deltas added to the adapted tensors."""

    def __init__(
        self,
        inner: TensorFile,
        names: dict[str, str],
        deltas: dict[str, LoraModule],
        adapter: TensorFile | None = None,
    ) -> None:
        self.inner, self.path, self.adapter = inner, inner.path, adapter
        self.inner_name = names  # outer name -> inner name
        self.deltas = deltas
        self._tensors: dict[str, TensorInfo] = {}
        for outer, name in names.items():
            info = inner.tensors[name]
            if outer in deltas:
                end = info.begin + info.numel * 4
                self._tensors[outer] = MergedInfo(outer, "F32", info.shape, info.begin, end)
            else:
                self._tensors[outer] = dataclasses.replace(info, name=outer)

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        """Tensor entries by their name in the merged model."""
        return self._tensors

    @property
    def local(self) -> bool:
        """As the file underneath."""
        return self.inner.local

    def _inner(self, info: TensorInfo) -> TensorInfo:
        """The stored entry behind an outer one."""
        return self.inner.tensors[self.inner_name[info.name]]

    def span(self, info: TensorInfo) -> tuple[int, int]:
        """The stored bytes of the base tensor."""
        return self.inner.span(self._inner(info))

    def pooled(self, info: TensorInfo) -> bool:
        """Untouched tensors come from the pool as stored; merged ones never do."""
        return info.name not in self.deltas and self.inner.pooled(self._inner(info))

    def read_into(self, info: TensorInfo, start: int, count: int, out: Array) -> Array:
        """Read elements [start, start + count): stored, or merged in float32."""
        m = self.deltas.get(info.name)
        if m is None:
            return self.inner.read_into(self._inner(info), start, count, out)
        return self._merged(info, m, start, count, out)

    def _merged(self, info: TensorInfo, m: LoraModule, start: int, count: int, out: Array) -> Array:
        """W + scaling * (B @ A) over the rows covering the range, written into `out`."""
        typed = out[: count * 4].view(np.float32)
        if count == 0:
            return typed
        cols = info.shape[1]
        r0, r1 = start // cols, -(-(start + count) // cols)
        stored = self._inner(info)
        raw = np.empty((r1 - r0) * cols * stored.np_dtype.itemsize, dtype=np.uint8)
        w = decode(self.inner.read_into(stored, r0 * cols, (r1 - r0) * cols, raw), np.float32)
        left, right = self._factors(m, r0, r1)
        block = w.reshape(r1 - r0, cols) + (left @ right).astype(np.float32)
        typed[:] = block.reshape(-1)[start - r0 * cols :][:count]
        return typed

    def _factors(self, m: LoraModule, r0: int, r1: int) -> tuple[Array, Array]:
        """(rows x r, r x cols) factors whose product is the delta's rows [r0, r1)."""
        assert self.adapter is not None
        a_info, b_info = self.adapter.tensors[m.a], self.adapter.tensors[m.b]
        a = decode(self.adapter.read(m.a), np.float64).reshape(a_info.shape)
        b = decode(self.adapter.read(m.b), np.float64).reshape(b_info.shape)
        if m.transposed:  # delta = (B @ A).T: rows of W are columns of A
            return m.scaling * a[:, r0:r1].T, b.T
        return m.scaling * b[r0:r1], a

    def read(self, name: str, start: int = 0, count: int | None = None) -> Array:
        """Copy `count` elements (default: all) of a tensor, flattened."""
        return read_whole(self, name, start, count)

    def prefetch(self, info: TensorInfo, start: int = 0, count: int | None = None) -> None:
        """Read the base tensor ahead (approximately, for merged ones)."""
        if info.name not in self.deltas:
            self.inner.prefetch(self._inner(info), start, count)

    def close(self) -> None:
        """Close the file underneath."""
        self.inner.close()


def open_source(path: Path | str | AdapterPair, remote: RemoteOptions | None) -> Checkpoint:
    """Open a checkpoint (path or URL) or BASE+ADAPTER."""
    if isinstance(path, AdapterPair):
        return open_merged(path)
    return open_checkpoint(path, remote)


def open_merged(pair: AdapterPair) -> Checkpoint:
    """Open `BASE+ADAPTER` as one checkpoint (a misfitting adapter is a clear error)."""
    base = open_checkpoint(pair.base)
    try:
        if base.remote:
            raise InputError(
                f"The base of {pair} is remote; an adapter merges only onto a local base.",
                hint="download the base checkpoint, then audit BASE+ADAPTER.",
            )
        adapter = fit(open_adapter(pair.adapter), base)
    except BaseException:
        base.close()
        raise
    return _assemble(pair, base, adapter)


def _assemble(pair: AdapterPair, base: Checkpoint, adapter: Adapter) -> Checkpoint:
    """The merged checkpoint: base files through views, then the adapter's replacements."""
    deltas = {m.target: m for m in adapter.modules}
    files: list[TensorFile] = []
    tensors: dict[str, TensorRef] = {}
    for f in base.files:
        names = {n: r.info.name for n, r in base.tensors.items() if r.file is f}
        names = {n: i for n, i in names.items() if n not in adapter.replacements}
        view = MergedView(f, names, {n: d for n, d in deltas.items() if n in names}, adapter.file)
        files.append(view)
        tensors.update({n: TensorRef(view, view.tensors[n]) for n in names})
    # a saved embedding layer (`M.base_layer.weight`) replaces the base's and still takes M's delta
    replaced = {n: d for n, d in deltas.items() if n in adapter.replacements}
    own = MergedView(adapter.file, adapter.replacements, replaced, adapter.file)
    files.append(own)
    tensors.update({n: TensorRef(own, own.tensors[n]) for n in adapter.replacements})
    extra = [*base.extra_inputs, adapter.folder / "adapter_config.json"]
    return Checkpoint(
        path=Path(str(pair)), files=files, tensors=tensors, config=base.config, extra_inputs=extra
    )


def module_delta(adapter: Adapter, m: LoraModule) -> tuple[Array, Array]:
    """The delta's factors (out x r, r x in) in the base weight's layout, scaling folded in."""
    a = decode(adapter.file.read(m.a), np.float64).reshape(adapter.file.tensors[m.a].shape)
    b = decode(adapter.file.read(m.b), np.float64).reshape(adapter.file.tensors[m.b].shape)
    return (m.scaling * a.T, b.T) if m.transposed else (m.scaling * b, a)
