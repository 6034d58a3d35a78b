"""Fetch the remote byte ranges an audit needs before it streams, reporting bytes fetched of
bytes needed (coalesced ranges, in parallel, through the range cache)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from companion.audit.checkpoint import Checkpoint
from companion.audit.remote_cache import make_room
from companion.audit.remote_http import RemoteOptions
from companion.jobs import Job


def human_bytes(n: float) -> str:
    """A byte count for people: 512 B, 3.4 MB, 1.2 GB (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class Meter:
    """Bytes fetched of bytes needed, reported through the job at most every 0.1 s."""

    def __init__(self, job: Job, needed: int) -> None:
        self.job, self.needed, self.done = job, needed, 0
        self.lock, self.last = threading.Lock(), 0.0

    def message(self) -> str:
        """'fetched X of Y needed'."""
        return f"fetched {human_bytes(self.done)} of {human_bytes(self.needed)} needed"

    def add(self, n: int) -> None:
        """Count n bytes that arrived; report when due; raise Cancelled when cancelled."""
        self.job.check()
        with self.lock:
            self.done += n
            now = time.monotonic()
            if now - self.last < 0.1:
                return
            self.last = now
        self.report()

    def report(self) -> None:
        """Report now (the fraction covers the fetch phase only)."""
        self.job.report(self.message(), min(self.done / max(self.needed, 1), 1.0))


def fetch_remote(
    ckpts: list[Checkpoint], names: list[list[str]], job: Job, settings: RemoteOptions
) -> None:
    """Fetch every missing range of these tensors (per checkpoint) into the range cache."""
    gap = settings.remote_coalesce_gap
    if not any(c.remote for c in ckpts):
        return
    work = [w for c, n in zip(ckpts, names, strict=True) for w in c.remote_plan(n, gap)]
    meter = Meter(job, sum(b - a for _, (a, b) in work))
    if not work:
        job.report("remote tensors: every byte needed is in the range cache (fetched 0 B)")
        return
    make_room(settings.cache_dir, meter.needed, "The remote tensors this audit reads")
    blobs = {id(f.blob): f.blob for f, _ in work}.values()
    for blob in blobs:
        blob.on_bytes = meter.add
    meter.report()
    try:
        with ThreadPoolExecutor(settings.remote_concurrency, thread_name_prefix="remote") as pool:
            futures = [pool.submit(f.blob.fetch, a, b) for f, (a, b) in work]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    finally:
        for blob in blobs:
            blob.on_bytes = None
    meter.report()
