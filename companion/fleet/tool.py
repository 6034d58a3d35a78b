"""The `fleet.fingerprint` tool: the driver of a Ray run, writing each result to the store."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from companion.errors import InputError
from companion.fingerprint.schemas import SCHEME, FingerprintInput, FingerprintResult
from companion.fingerprint.schemas import ModelFingerprint as Fp
from companion.fleet.schemas import FleetInput, FleetItem, FleetResult
from companion.tools import ToolContext, get_tool, tool


def _resumable(ctx: ToolContext, paths: list[Path]) -> set[Path]:
    """Checkpoints whose content digest is already fingerprinted (cached digests, else hash)."""
    from companion.digests import Digests
    from companion.fingerprint.engine import content_digest, file_digests
    from companion.fleet.engine import checkpoint_files
    from companion.store.db import settings_store
    from companion.store.fingerprints import known_digests

    with settings_store(ctx.settings) as conn:
        known = known_digests(conn, SCHEME)
    if not known:
        return set()
    digests = Digests(ctx.settings.digest_path())
    skip = set()
    for p in paths:
        files = [f for f in checkpoint_files(p) if f.is_file()]
        if files and content_digest(file_digests(files, digests)) in known:
            skip.add(p)
    return skip


def _recorder(ctx: ToolContext, items: list[FleetItem], bar: Any) -> Any:
    """Record one finished fingerprint from the driver (one writer: no duplicates)."""
    from companion.fingerprint.tool import manifest_for

    compute = get_tool("fingerprint.compute")

    def record(fp: Fp) -> None:
        result = FingerprintResult(fingerprints=[fp], manifest=manifest_for([fp]))
        record_id = None
        if ctx.recorder is not None:
            record_id = ctx.recorder(compute, FingerprintInput(paths=[fp.path]), result)
        items.append(FleetItem(path=fp.path, status=fp.status, error=fp.error,
                               record_id=record_id, seconds=fp.seconds))  # fmt: skip
        if bar is not None:
            bar[0].advance(bar[1])

    return record


def _bar(total: int) -> Any:
    """A rich progress bar on stderr when it is a terminal (None otherwise)."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(console=Console(stderr=True), transient=False)
    progress.start()
    return progress, progress.add_task("fingerprinting", total=total)


@tool(
    "fleet.fingerprint",
    description="Fingerprint every checkpoint under a folder (or listed in a file) as Ray "
    "tasks: memory-aware scheduling, retries on worker failure, results stored as they "
    "finish, resume by content digest. Needs the `fleet` extra (ray).",
    read_only=False,
    cli="fleet fingerprint",
    positional=("source",),
)
def fleet_tool(args: FleetInput, ctx: ToolContext) -> FleetResult:
    """Tool entry point for `fleet.fingerprint`."""
    from companion.fleet.engine import discover, run_fleet, start_ray

    started = time.perf_counter()
    paths = [ctx.path(p) for p in discover(ctx.path(args.source))]
    skip = _resumable(ctx, paths) if args.resume else set()
    todo = [p for p in paths if p not in skip]
    items = [FleetItem(path=str(p), status="skipped") for p in sorted(skip)]
    if not todo:  # nothing to run: no cluster is started
        return _result(items, todo, time.perf_counter() - started, 0.0)
    try:
        import ray  # noqa: F401  (only to give a clear error without the extra)
    except ImportError:
        raise InputError(
            "Ray is not installed.", hint="pip install 'companion[fleet]' (ray[default])."
        ) from None
    cpus = start_ray(args.ray_address, args.num_cpus)
    bar = _bar(len(todo))
    try:
        run_fleet(todo, _recorder(ctx, items, bar), ctx.job(), args.max_retries,
                  ctx.settings.digest_path())  # fmt: skip
    finally:
        if bar is not None:
            bar[0].stop()
    return _result(items, todo, time.perf_counter() - started, cpus)


def _result(items: list[FleetItem], todo: list[Path], seconds: float, cpus: float) -> FleetResult:
    """Counts and the bytes read by the run."""
    from companion.fleet.engine import checkpoint_files

    nbytes = sum(f.stat().st_size for p in todo for f in checkpoint_files(p) if f.exists())
    return FleetResult(
        items=items,
        ok=sum(i.status == "ok" for i in items),
        failed=sum(i.status == "failed" for i in items),
        skipped=sum(i.status == "skipped" for i in items),
        seconds=round(seconds, 3),
        bytes_read=nbytes,
        cpus=cpus,
    )
