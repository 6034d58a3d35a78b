"""The streamed pass over one tensor pair, chunk by chunk, with float64 accumulators.

Each chunk is read in place from the audit reader's block pool (reader.py), or copied (or
read with pread) into per-thread buffers reused for the whole audit (memory stays flat).
When the C kernel (`_fused.c`, built at install) is there and both sides are F32, BF16 or
F16, the chunk is reduced in one fused pass (every sum below in float64; row projections for
the matching test are then taken on the converted chunk). Otherwise, and for
chunks holding NaN or Inf, numpy does it: the chunk is converted once to float32 (bf16 by a
16-bit shift; float64 and wide integers stay float64), and reduced with BLAS dot products
taken over 64K-element rows (`np.vecdot`), so every partial sum stays short and the totals
are kept in float64. Cosine, Pearson, relative L2, norm ratio, mean and std all come from the
same sums. A chunk holding NaN or Inf (detected from its sums) is redone in float64 with the
bad positions masked.
"""

from __future__ import annotations

from collections.abc import Callable
from math import isfinite
from typing import Any

import numpy as np

from companion.audit.checkpoint import TensorRef
from companion.audit.metrics import Moments, PairAccumulator, StreamPlan
from companion.audit.safetensors import DTYPES, TensorInfo, as_numbers
from companion.audit.workspace import workspace

Array = np.ndarray[Any, Any]
_ROW = 1 << 16
_PREFETCH = 64 << 20  # bytes per readahead window; two windows stay ahead of the reader
_WIDE = {"F64", "I32", "I64"}
_BF16 = DTYPES["BF16"]
_EMPTY = np.empty(0, dtype=np.uint8)
_VECDOT: Callable[[Array, Array], Array] | None = getattr(np, "vecdot", None)
_KINDS = {"F32": 0, "BF16": 1, "F16": 2}  # the stored dtypes the C kernel reads
_PREFIX = 1 << 16  # elements of the first chunk that decide the shift on the fused path
_RAW = ("raw0", "raw1")  # the workspace's names of each side's chunk buffer

try:
    from companion.audit import _fused
except ImportError:  # no C compiler at install: the numpy path does everything
    _fused = None  # type: ignore[assignment]


def _dot(x: Array, y: Array) -> float:
    """Sum of x*y with float32 partial sums over 64K-element rows, totalled in float64."""
    n = x.size
    whole = n - n % _ROW
    total = 0.0
    if whole:
        xr, yr = x[:whole].reshape(-1, _ROW), y[:whole].reshape(-1, _ROW)
        if _VECDOT is not None:
            total = float(_VECDOT(xr, yr).sum(dtype=np.float64))
        else:  # numpy < 2
            total = sum(float(np.dot(u, v)) for u, v in zip(xr, yr, strict=True))
    if whole < n:
        total += float(np.dot(x[whole:], y[whole:]))
    return total


def _kind(info: TensorInfo) -> int | None:
    """The C kernel's code for the chunks a tensor hands out (None: numpy path). A GGUF
    tensor re-ordered or dequantized on read names its stored type but yields float32."""
    kind = _KINDS.get(info.dtype)
    return kind if kind is not None and info.np_dtype == DTYPES[info.dtype] else None


class _Pass:
    """State of one streamed pair: plan, buffers, shifts and the sample positions."""

    def __init__(
        self, ra: TensorRef, rb: TensorRef, plan: StreamPlan, positions: tuple[Array, Array]
    ) -> None:
        self.ra, self.rb, self.plan = ra, rb, plan
        wide = ra.info.dtype in _WIDE or rb.info.dtype in _WIDE
        shape = ra.info.shape
        self.cols = shape[-1] if len(shape) >= 2 else 0
        rows_per = max(1, plan.chunk // self.cols) if self.cols else 0
        self.chunk = rows_per * self.cols if self.cols else plan.chunk
        self.ws = workspace()
        self.acc = PairAccumulator(Moments())
        self.shift: tuple[float, float] | None = None
        self.pos = positions
        edges = np.arange(0, ra.info.numel + self.chunk, self.chunk)  # the chunks' starts
        self.bounds = [np.searchsorted(p, edges).tolist() for p in positions]
        # Samples are gathered in the stored dtype and handed out as numbers (bf16 and fp8
        # words as float32, exact); the sample metrics convert them to float64 when they use them.
        self.samples = (
            np.empty(positions[0].size, dtype=ra.info.np_dtype),
            np.empty(positions[1].size, dtype=rb.info.np_dtype),
        )
        self.fold = plan.gain_a is not None and plan.gain_b is not None and self.cols > 0
        self.use_dtype(np.dtype(np.float64 if wide else np.float32))
        if self.proj is not None and self.cols:
            rows = ra.info.numel // self.cols
            self.acc.features_a = np.zeros((rows, self.proj.shape[1]))
            self.acc.features_b = np.zeros_like(self.acc.features_a)
        self.row = 0
        self.stored: list[Array] = [_EMPTY, _EMPTY]
        self.held: list[Any] = []  # pool blocks pinned for the current chunk (reader.Gate.hold)
        # the sides the reader's pool serves, and (ref, item size, first byte) for each
        self.in_pool = [plan.gate is not None and r.file.pooled(r.info) for r in (ra, rb)]
        self.pooled = [
            (r, r.info.np_dtype.itemsize, r.file.span(r.info)[0])
            for r, ok in zip((ra, rb), self.in_pool, strict=True)
            if ok
        ]
        kinds = (_kind(ra.info), _kind(rb.info))
        self.kinds = kinds if _fused is not None else (None, None)

    def use_dtype(self, dtype: np.dtype[Any]) -> None:
        """Set the work dtype (float32, or float64 for wide types and shifted gains)."""
        self.dtype = dtype
        plan = self.plan
        if self.fold:
            assert plan.gain_a is not None and plan.gain_b is not None
            self.gain_a = plan.gain_a.astype(dtype)
            self.gain_b = plan.gain_b.astype(dtype)
        self.proj = plan.projection.astype(dtype) if plan.projection is not None else None

    def use_float64(self) -> None:
        """Switch to float64 work (only ever before the first chunk is accumulated)."""
        self.use_dtype(np.dtype(np.float64))

    def ready(self, start: int, count: int) -> None:
        """Wait until the reader has both sides' bytes of a chunk (before pinning either)."""
        gate = self.plan.gate
        for ref, size, begin in self.pooled:
            assert gate is not None
            gate.wait(ref.file.path, begin + (start + count) * size)

    def release(self) -> None:
        """Unpin the pool blocks the chunk was read from."""
        gate = self.plan.gate
        while self.held and gate is not None:
            gate.release(self.held.pop())
        self.stored = [_EMPTY, _EMPTY]

    @property
    def fused(self) -> bool:
        """Whether the C kernel takes this pair."""
        return None not in self.kinds

    def read(self, side: int, start: int, count: int) -> Array:
        """Read one side's chunk (stored dtype) in place from the reader's pool, else into
        its raw buffer, once the reader has it (`ready`)."""
        ref = self.ra if side == 0 else self.rb
        dtype = ref.info.np_dtype
        raw = self.ws.get(_RAW[side], self.chunk * dtype.itemsize, np.uint8)
        gate = self.plan.gate
        if gate is not None and self.in_pool[side]:
            begin = ref.file.span(ref.info)[0] + start * dtype.itemsize
            held = gate.hold(ref.file.path, begin, count * dtype.itemsize)
            if held is not None:  # inside one pool block: read in place, no copy
                self.held.append(held[1])
                self.stored[side] = np.frombuffer(held[0], dtype=dtype)
                return self.stored[side]
            view = raw[: count * dtype.itemsize]
            if gate.copy(ref.file.path, begin, view.data):
                self.stored[side] = view.view(dtype)
                return self.stored[side]
        self.stored[side] = ref.file.read_into(ref.info, start, count, raw)
        return self.stored[side]

    def load(self, side: int, start: int, count: int) -> Array:
        """Read and convert one side's chunk into its work buffer."""
        self.read(side, start, count)
        return self.convert(side, count)

    def convert(self, side: int, count: int) -> Array:
        """The stored chunk of one side in the work dtype (first `count` elements)."""
        stored = self.stored[side][:count]
        out = self.ws.get(f"work{side}", self.chunk, self.dtype)[:count]
        if stored.dtype == _BF16 and self.dtype == np.float32:
            bits = out.view(np.uint32)
            np.copyto(bits, stored.view(np.uint16), casting="unsafe")
            bits <<= 16
        elif stored.dtype == _BF16:
            np.copyto(out, (stored.view(np.uint16).astype(np.uint32) << 16).view(np.float32))
        else:
            np.copyto(out, stored, casting="unsafe")
        return out

    def gather(self, side: int, start: int) -> None:
        """Copy the sample positions falling in this chunk (stored values)."""
        pos, x = self.pos[side], self.stored[side]
        if pos.size == 0:
            return
        k = start // self.chunk
        lo, hi = self.bounds[side][k], self.bounds[side][k + 1]
        if hi > lo:
            self.samples[side][lo:hi] = x[pos[lo:hi] - start]

    def decide_shift(self, a: Array, b: Array) -> tuple[float, float]:
        """Shift by the first chunk's mean when the mean dwarfs the spread (gains near one)."""
        out = []
        for x in (a, b):
            ok = x[np.isfinite(x)] if not isfinite(float(x.sum(dtype=np.float64))) else x
            n = ok.size
            if n == 0:
                out.append(0.0)
                continue
            m = float(ok.sum(dtype=np.float64)) / n
            var = max(_dot(ok, ok) / n - m * m, 0.0)
            out.append(float(self.dtype.type(m)) if m * m > 1e-4 * var else 0.0)
        return out[0], out[1]


def _fast(p: _Pass, a: Array, b: Array, sa: float, sb: float) -> None:
    """One all-finite chunk: differences, counts, folding, projection, then shifted sums."""
    acc, ws, n = p.acc, p.ws, a.size
    d = ws.get("d", p.chunk, p.dtype)[:n]
    np.subtract(a, b, out=d)
    acc.sdd += _dot(d, d)
    acc.max_abs = max(acc.max_abs, float(d.max()), -float(d.min()))
    flags = ws.get("flags", p.chunk, np.bool_)[:n]
    acc.identical += int(np.count_nonzero(np.equal(d, 0, out=flags)))
    t1 = ws.get("t1", p.chunk, p.dtype)[:n]
    # Sign bits: on the stored words when both sides share a signed layout (half the bytes).
    ra, rb = p.stored
    same = ra.dtype == rb.dtype and ra.dtype.kind in "fiV" and ra.dtype != np.uint8
    x, y = (ra, rb) if same and ra.dtype.itemsize < p.dtype.itemsize else (a, b)
    ints = np.dtype(f"i{x.dtype.itemsize}")
    xor = t1.view(np.uint8)[: n * ints.itemsize].view(ints)
    np.bitwise_xor(x.view(ints), y.view(ints), out=xor)
    acc.sign_agree += n - int(np.count_nonzero(np.less(xor, 0, out=flags)))
    if p.cols:
        a2, b2 = a.reshape(-1, p.cols), b.reshape(-1, p.cols)
        if p.fold:
            t2 = ws.get("t2", p.chunk, p.dtype)[:n]
            fa, fb = t1.reshape(-1, p.cols), t2.reshape(-1, p.cols)
            np.multiply(a2, p.gain_a, out=fa)
            np.multiply(b2, p.gain_b, out=fb)
            ones = ws.ones(n, p.dtype)
            acc.folded.add_sums(
                n, _dot(t1, ones), _dot(t2, ones), _dot(t1, t1), _dot(t2, t2), _dot(t1, t2)
            )
        if p.proj is not None and acc.features_a is not None and acc.features_b is not None:
            r = a2.shape[0]
            acc.features_a[p.row : p.row + r] = a2 @ p.proj
            acc.features_b[p.row : p.row + r] = b2 @ p.proj
            p.row += r
    assert p.shift is not None
    ka, kb = p.shift
    if ka:
        a -= p.dtype.type(ka)
    if kb:
        b -= p.dtype.type(kb)
    acc.moments.add_sums(n, sa - n * ka, sb - n * kb, _dot(a, a), _dot(b, b), _dot(a, b))


def _slow(p: _Pass, a32: Array, b32: Array) -> None:
    """A chunk with NaN or Inf: float64, non-finite positions masked out and counted."""
    acc = p.acc
    a, b = a32.astype(np.float64), b32.astype(np.float64)
    fa_ok, fb_ok = np.isfinite(a), np.isfinite(b)
    acc.nonfinite_a += int(a.size - np.count_nonzero(fa_ok))
    acc.nonfinite_b += int(b.size - np.count_nonzero(fb_ok))
    mask = fa_ok & fb_ok
    count = int(np.count_nonzero(mask))
    a, b = np.where(mask, a, 0.0), np.where(mask, b, 0.0)
    skipped = a.size - count
    d = a - b
    acc.sdd += float(d @ d)
    if count:
        acc.max_abs = max(acc.max_abs, float(np.abs(d).max()))
    acc.identical += int(np.count_nonzero(d == 0)) - skipped
    acc.sign_agree += int(np.count_nonzero(np.signbit(a) == np.signbit(b))) - skipped
    if p.cols:
        a2, b2 = a.reshape(-1, p.cols), b.reshape(-1, p.cols)
        if p.fold:
            fa, fb = (a2 * p.gain_a).ravel(), (b2 * p.gain_b).ravel()
            acc.folded.add_sums(count, fa.sum(), fb.sum(), _dot(fa, fa), _dot(fb, fb), _dot(fa, fb))
        if p.proj is not None and acc.features_a is not None and acc.features_b is not None:
            r = a2.shape[0]
            proj = p.proj.astype(np.float64)
            acc.features_a[p.row : p.row + r] = a2 @ proj
            acc.features_b[p.row : p.row + r] = b2 @ proj
            p.row += r
    assert p.shift is not None
    ka, kb = p.shift
    a = np.where(mask, a - ka, 0.0)
    b = np.where(mask, b - kb, 0.0)
    acc.moments.add_sums(count, a.sum(), b.sum(), _dot(a, a), _dot(b, b), _dot(a, b))


def _numpy_chunk(p: _Pass, start: int, count: int) -> None:
    """One chunk on the numpy path."""
    a, b = p.load(0, start, count), p.load(1, start, count)
    p.gather(0, start)
    p.gather(1, start)
    if p.shift is None:
        p.shift = p.decide_shift(a, b)
        p.acc.moments.ka, p.acc.moments.kb = p.shift
        if p.shift != (0.0, 0.0) and p.dtype != np.float64:
            # Gains near one: shifted sums in float64 keep Pearson exact to ~1e-12.
            p.use_float64()
            a, b = p.load(0, start, count), p.load(1, start, count)
    ones = p.ws.ones(count, p.dtype)
    sa, sb = _dot(a, ones), _dot(b, ones)
    if isfinite(sa) and isfinite(sb):
        _fast(p, a, b, sa, sb)
    else:
        _slow(p, a, b)


def _fused_chunk(p: _Pass, start: int, count: int) -> None:
    """One chunk through the C kernel (a chunk with NaN or Inf goes to `_slow`)."""
    xa, xb = p.read(0, start, count), p.read(1, start, count)
    p.gather(0, start)
    p.gather(1, start)
    if p.shift is None:
        prefix = min(count, _PREFIX)
        p.shift = p.decide_shift(p.convert(0, prefix), p.convert(1, prefix))
        p.acc.moments.ka, p.acc.moments.kb = p.shift
    ka, kb = p.shift
    gain_a = gain_b = None
    if p.fold:  # the kernel takes C-contiguous float64 gains
        gain_a = np.ascontiguousarray(p.plan.gain_a, dtype=np.float64)
        gain_b = np.ascontiguousarray(p.plan.gain_b, dtype=np.float64)
    kind_a, kind_b = p.kinds
    assert _fused is not None and kind_a is not None and kind_b is not None
    sums = _fused.pair(
        xa, kind_a, xb, kind_b, count, p.cols if p.fold else 0, ka, kb, gain_a, gain_b
    )
    sa, sb, saa, sbb, sab, sdd, max_abs, identical, agree, folded = sums
    if not all(map(isfinite, (sa, sb, saa, sbb))):
        _slow(p, p.convert(0, count), p.convert(1, count))
        return
    acc = p.acc
    if p.proj is not None and acc.features_a is not None and acc.features_b is not None:
        a2, b2 = (p.convert(k, count).reshape(-1, p.cols) for k in (0, 1))
        acc.features_a[p.row : p.row + a2.shape[0]] = a2 @ p.proj
        acc.features_b[p.row : p.row + a2.shape[0]] = b2 @ p.proj
        p.row += a2.shape[0]
    acc.moments.add_sums(count, sa, sb, saa, sbb, sab)
    acc.sdd += sdd
    acc.max_abs = max(acc.max_abs, max_abs)
    acc.identical += identical
    acc.sign_agree += agree
    if p.fold:
        acc.folded.add_sums(count, *folded)


def stream_pair(
    ra: TensorRef,
    rb: TensorRef,
    plan: StreamPlan,
    positions: tuple[Array, Array],
    tick: Callable[[int], None],
) -> tuple[PairAccumulator, Array, Array]:
    """Stream both tensors chunk by chunk (row-aligned for matrices) and accumulate metrics.

    Also gathers the values at `positions` (sorted element indices, per side) on the way, so
    the deterministic samples cost no extra read. `tick(nbytes)` runs after each chunk; it
    reports progress and raises on cancel. Returns the accumulator and both samples.
    """
    p = _Pass(ra, rb, plan, positions)
    total = ra.info.numel
    itemsize = ra.info.np_dtype.itemsize + rb.info.np_dtype.itemsize
    window = max(p.chunk, _PREFETCH // max(ra.info.np_dtype.itemsize, 1))
    ahead = 0  # elements already handed to the kernel's readahead (cold data)
    for start in range(0, total, p.chunk):
        count = min(p.chunk, total - start)
        while plan.gate is None and ahead < min(total, start + 2 * window):
            span = min(window, total - ahead)
            ra.file.prefetch(ra.info, ahead, span)
            rb.file.prefetch(rb.info, ahead, span)
            ahead += span
        p.ready(start, count)  # pins are never held while waiting for the reader
        try:
            if p.fused:
                _fused_chunk(p, start, count)
            else:
                _numpy_chunk(p, start, count)
        finally:
            p.release()
        if plan.gate is not None:
            plan.gate.consume(count * itemsize)
        tick(count * itemsize)
    return p.acc, as_numbers(p.samples[0]), as_numbers(p.samples[1])
