"""The audit's reader: aligned blocks (O_DIRECT when cold), sha256, copies and the fallbacks."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from companion.audit import blockio, reader
from companion.audit.pagecache import cached_pages
from companion.audit.reader import Gate, Span
from companion.audit.schemas import AuditResult
from companion.digests import Digests
from companion.errors import InputError
from companion.toolbox import run_tool
from companion.tools import ToolContext

KB = 1024


@pytest.fixture()
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """64 KB blocks and a pool of twelve, so that small files span many blocks and recycle."""
    monkeypatch.setattr(reader, "BLOCK", 64 * KB)
    monkeypatch.setattr(reader, "SLICE", 128 * KB)
    monkeypatch.setattr(reader, "LEAD", 256 * KB)
    monkeypatch.setattr(reader, "POOL", 12)


def _evict(path: Path) -> None:
    """Drop a file's pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def _serve(
    gate: Gate, plan: list[tuple[Span, Span]], content: dict[Path, bytes]
) -> tuple[int, int]:
    """Walk the plan as the workers do, in 30 KB chunks: (chunks the pool served, with their
    bytes checked; chunks in all)."""
    served = total = 0
    for spans in plan:
        for span in spans:
            for lo in range(span.begin, span.end, 30 * KB):
                hi = min(lo + 30 * KB, span.end)
                gate.wait(span.path, hi)
                out = bytearray(hi - lo)
                if gate.copy(span.path, lo, memoryview(out)):
                    served += 1
                    assert out == content[span.path][lo:hi]
                total += 1
                gate.consume(hi - lo)
    return served, total


@pytest.mark.usefixtures("small_blocks")
def test_cold_files_are_read_directly_hashed_and_served(tmp_path: Path) -> None:
    """Workers get the right bytes, the digests are right, and cold data skips the page cache."""
    paths, content = [], {}
    for name, size in (("a", 1000 * KB + 123), ("b", 700 * KB + 5)):
        p = tmp_path / name
        content[p.resolve()] = os.urandom(size)
        p.write_bytes(content[p.resolve()])
        _evict(p)
        paths.append(p.resolve())
    a, b = paths
    sa, sb = a.stat().st_size, b.stat().st_size
    plan = [
        (
            Span(a, lo, min(lo + 100 * KB, sa)),
            Span(b, lo * 7 // 10, min(min(lo + 100 * KB, sa) * 7 // 10, sb)),
        )
        for lo in range(8, sa, 100 * KB)
    ]
    gate = Gate(paths, plan, lambda n: None)
    try:
        copied, total = _serve(gate, plan, content)
        inputs = gate.result()
    finally:
        gate.close()
    assert copied > 10 * (total - copied)
    for entry, p in zip(inputs, paths, strict=True):
        assert entry.sha256 == hashlib.sha256(content[p]).hexdigest()
        assert entry.sha256_from == "read"
    fd = os.open(a, os.O_RDONLY)
    try:
        cached = cached_pages(fd, 0, sa)
    finally:
        os.close(fd)
    if cached is not None:  # the kernel can say: the direct reads left the page cache alone
        assert cached < (sa // 4096) // 4


def test_blocks_mostly_in_the_page_cache_are_read_buffered_the_rest_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory reclaim leaves warm files with holes: a block at least half cached is read
    through the page cache (only its holes come from the disk, and stay cached); a block
    mostly evicted is read with O_DIRECT (the page cache left alone). Bytes and sha256 right."""
    block = 256 * KB
    monkeypatch.setattr(reader, "BLOCK", block)
    monkeypatch.setattr(reader, "SLICE", 2 * block)
    monkeypatch.setattr(reader, "LEAD", 4 * block)
    p = (tmp_path / "holes").resolve()
    content = {p: os.urandom(8 * block)}
    p.write_bytes(content[p])
    _evict(p)
    fd = os.open(p, os.O_RDONLY)
    try:
        os.pread(fd, 8 * block, 0)  # warm, then punch the holes
        if cached_pages(fd, 0, 8 * block) is None:
            pytest.skip("the kernel cannot say what is in the page cache (no cachestat)")
        hole, pages = 16 * KB, block // 4096
        for i in range(8):
            lo, hi = (i * block, i * block + hole) if i < 4 else (i * block + hole, (i + 1) * block)
            os.posix_fadvise(fd, lo, hi - lo, os.POSIX_FADV_DONTNEED)
        before = [cached_pages(fd, i * block, block) for i in range(8)]
        assert before == [pages - hole // 4096] * 4 + [hole // 4096] * 4
        plan = [(Span(p, 0, 8 * block), Span(p, 0, 0))]
        gate = Gate([p], plan, lambda n: None)
        try:
            served, total = _serve(gate, plan, content)
            inputs = gate.result()
        finally:
            gate.close()
        assert served == total
        assert inputs[0].sha256 == hashlib.sha256(content[p]).hexdigest()
        after = [cached_pages(fd, i * block, block) for i in range(8)]
        assert after == [pages] * 4 + [hole // 4096] * 4
    finally:
        os.close(fd)


def _metrics(a: Path, b: Path, third: Path | None = None) -> list[object]:
    """Per-tensor metrics of one audit."""
    args = {"a": str(a), "b": str(b), "baselines": False}
    if third is not None:
        args["baseline"] = str(third)
    r = run_tool("audit.compare", args, ToolContext())
    assert isinstance(r, AuditResult)
    return [(t.name_a, t.metrics) for t in r.per_tensor]


def test_recycled_blocks_fall_back_to_pread(
    fam: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool far too small (and a third model re-reading A) changes no figure."""
    expected = _metrics(fam["base"], fam["finetune"], fam["independent"])
    monkeypatch.setattr(reader, "BLOCK", 16 * KB)
    monkeypatch.setattr(reader, "SLICE", 32 * KB)
    monkeypatch.setattr(reader, "POOL", 2)
    for p in (fam["base"], fam["finetune"], fam["independent"]):
        _evict(p / "model.safetensors")
    assert _metrics(fam["base"], fam["finetune"], fam["independent"]) == expected


@pytest.mark.usefixtures("small_blocks")
def test_reads_stay_in_flight_across_tensor_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one block per tensor, a read of B starts while A's read is still in flight."""
    import threading

    # The reader never waits for the workers here (LEAD covers both files): a throttled
    # reader rightly finishes every read in flight, the last one held until a next read
    # starts that only the workers' progress can allow.
    monkeypatch.setattr(reader, "LEAD", 64 * 64 * KB)

    paths = []
    for name in ("a", "b"):
        p = tmp_path / name
        p.write_bytes(os.urandom(16 * 64 * KB))
        paths.append(p.resolve())
    a, b = paths
    plan = [
        (Span(a, k * 64 * KB, (k + 1) * 64 * KB), Span(b, k * 64 * KB, (k + 1) * 64 * KB))
        for k in range(16)
    ]
    fill = blockio.ReadFile.fill
    flying: list[Path] = []
    overlaps: list[tuple[Path, Path]] = []
    starts, stalled = [0], threading.Event()
    started = threading.Condition()
    reads = 2 * len(plan)  # one block per tensor and file

    def tracked(self: blockio.ReadFile, block: blockio.Block, offset: int) -> int:
        """The real read, held until the next read starts, noting what overlaps. The wait is
        only a guard against a hang: a reader that never starts the next read while one is in
        flight stalls it once (then the rest run unheld and the overlap count fails)."""
        with started:
            overlaps.extend((other, self.path) for other in flying)
            flying.append(self.path)
            starts[0] += 1
            mine = starts[0]
            started.notify_all()
            held = mine < reads and not stalled.is_set()
            if held and not started.wait_for(lambda: starts[0] > mine, timeout=60):
                stalled.set()
        try:
            return fill(self, block, offset)
        finally:
            with started:
                flying.remove(self.path)

    monkeypatch.setattr(blockio.ReadFile, "fill", tracked)
    gate = Gate(paths, plan, lambda n: None)
    try:
        for sa, sb in plan:
            gate.wait(sb.path, sb.end)
            gate.consume(sa.end - sa.begin + sb.end - sb.begin)
        inputs = gate.result()
    finally:
        gate.close()
    assert (a, b) in overlaps and (b, a) in overlaps  # the pipeline crosses every boundary
    assert not stalled.is_set(), "a read was never followed by another while in flight"
    assert len(overlaps) >= reads - 1  # every read but the first started beside another
    assert [i.sha256 for i in inputs] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


@pytest.mark.usefixtures("small_blocks")
def test_hold_serves_bytes_in_place_and_pins_the_block(tmp_path: Path) -> None:
    """A range inside one pool block is lent read-only (no copy); across blocks it is not."""
    p = tmp_path / "a"
    data = os.urandom(4 * 64 * KB)
    p.write_bytes(data)
    path = p.resolve()
    gate = Gate([path], [(Span(path, 0, len(data)), Span(path, 0, 0))], lambda n: None)
    try:
        gate.wait(path, 2 * 64 * KB)
        held = gate.hold(path, 64 * KB + 100, 1000)
        assert held is not None
        view, block = held
        assert view.readonly and bytes(view) == data[64 * KB + 100 : 64 * KB + 1100]
        assert block.pins == 1
        gate.release(block)
        assert block.pins == 0
        assert gate.hold(path, 64 * KB - 10, 20) is None  # straddles two blocks: copy instead
        gate.consume(len(data))
        assert gate.result()[0].sha256 == hashlib.sha256(data).hexdigest()
    finally:
        gate.close()


def test_a_wait_past_the_end_of_a_file_fails_instead_of_blocking(tmp_path: Path) -> None:
    """A tensor entry that runs past its file (no format should let one through: a BUILD in
    a hostile torch pickle once did) is an error naming the file, not a wait that never
    returns: the reader stops at the end of the file and then waits for the workers."""
    p = tmp_path / "a"
    p.write_bytes(os.urandom(64 * KB))
    path = p.resolve()
    gate = Gate([path], [(Span(path, 0, 64 * KB), Span(path, 0, 0))], lambda n: None)
    try:
        with pytest.raises(InputError, match="runs past the end of the file") as err:
            gate.wait(path, 4 * 64 * KB)
        assert str(path) in err.value.message and err.value.hint
        gate.wait(path, 64 * KB)  # the file itself is still served
    finally:
        gate.close()


@pytest.mark.usefixtures("small_blocks")
def test_a_file_the_digest_cache_vouches_for_is_read_directly_when_cold(tmp_path: Path) -> None:
    """Never hashed again; cold, its blocks come through the pool at direct-read speed (the
    page cache left alone); warm, the workers pread it from the page cache and the pool
    holds none of it."""
    digests = Digests(tmp_path / "digests.sqlite3")
    content: dict[Path, bytes] = {}
    for name, size in (("a", 900 * KB + 17), ("b", 640 * KB)):
        p = (tmp_path / name).resolve()
        content[p] = os.urandom(size)
        p.write_bytes(content[p])
        digests.remember(p, os.stat(p), name * 64, time.time_ns() + 10**12)  # settled
        _evict(p)
    a, b = content
    plan = [
        (Span(a, lo, min(lo + 100 * KB, len(content[a]))), Span(b, lo * 7 // 10, lo * 7 // 10))
        for lo in range(0, len(content[a]), 100 * KB)
    ]
    plan.append((Span(b, 0, len(content[b])), Span(b, 0, 0)))
    fd = os.open(a, os.O_RDONLY)
    try:
        if cached_pages(fd, 0, 4096) is None:
            pytest.skip("the kernel cannot say what is in the page cache (no cachestat)")
        cold = Gate([a, b], plan, lambda n: None, digests)
        try:
            served, _ = _serve(cold, plan, content)
            inputs = cold.result()
        finally:
            cold.close()
        assert served > 0 and cached_pages(fd, 0, len(content[a])) < (len(content[a]) // 4096) // 4
        assert [(i.sha256, i.sha256_from) for i in inputs] == [
            ("a" * 64, "cache"),
            ("b" * 64, "cache"),
        ]
        for p in (a, b):
            p.read_bytes()  # warm
        warm = Gate([a, b], plan, lambda n: None, digests)
        try:
            assert _serve(warm, plan, content)[0] == 0  # left to the workers' preads
            assert [i.sha256_from for i in warm.result()] == ["cache", "cache"]
        finally:
            warm.close()
    finally:
        os.close(fd)


def _vm_flags(buf: object) -> set[str]:
    """The kernel's VmFlags of the mapping holding a buffer (from /proc/self/smaps)."""
    import ctypes

    address = ctypes.addressof(ctypes.c_char.from_buffer(buf))  # type: ignore[arg-type]
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and head == "VmFlags:":
            return set(line.split()[1:])
    raise AssertionError("the buffer is in no mapping")


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's smaps")
@pytest.mark.parametrize("cold", [True, False])
def test_the_pool_is_in_huge_pages_only_for_direct_reads(tmp_path: Path, cold: bool) -> None:
    """Direct reads pin the pool's pages (fewer in huge pages); warm copies into fresh huge
    pages cost more to fault in on a VM than into small ones (reader.py)."""
    p = (tmp_path / "a").resolve()
    p.write_bytes(os.urandom(300 * KB))
    if cold:
        _evict(p)
    else:
        p.read_bytes()
    plan = [(Span(p, 0, 300 * KB), Span(p, 0, 300 * KB))]
    gate = Gate([p], plan, lambda n: None)
    try:
        gate.wait(p, 300 * KB)
        direct = gate.files[p].direct_fd is not None
        flags = [_vm_flags(b.buf) for b in gate.pool]
        gate.result()
    finally:
        gate.close()
    if cold and not direct:
        pytest.skip("this file system refuses O_DIRECT: no direct reads")
    assert flags and all(("hg" in f) is cold for f in flags)
