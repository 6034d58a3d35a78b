"""Checkpoints as Ray tasks: memory-aware, retried on worker death, results as they finish.

The driver submits one task per checkpoint with a `memory=` resource sized from the files,
so a node never runs more fingerprints than fit. A worker that dies is retried by Ray
(`max_retries`); an error inside a task is a result (a failed fingerprint), not a retry.
Results are handed to `on_result` on the driver as each task finishes, so the store is
written once per checkpoint by one process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from companion.errors import InputError
from companion.fingerprint.schemas import ModelFingerprint
from companion.jobs import Job

OnResult = Callable[[ModelFingerprint], None]
_BASE_MEMORY = 128 * 1024 * 1024


def discover(source: Path) -> list[Path]:
    """Checkpoint folders under a root (those holding safetensors), or the lines of a list."""
    if source.is_file() and not source.name.endswith((".safetensors", ".json")):
        lines = source.read_text(encoding="utf-8").splitlines()
        return [Path(s.strip()) for s in lines if s.strip() and not s.startswith("#")]
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise InputError(f"{source} is neither a folder nor a list file.", hint="check the path.")
    found = {p.parent for p in source.rglob("*.safetensors") if not p.name.startswith(".")}
    return sorted(found)


def checkpoint_files(path: Path) -> list[Path]:
    """The files a checkpoint's content digest covers, listed without opening them."""
    if path.is_dir():
        names = [*path.glob("*.safetensors"), *path.glob("*.safetensors.index.json")]
        cfg = path / "config.json"
        return sorted(
            [p for p in names if not p.name.startswith(".")] + ([cfg] if cfg.is_file() else [])
        )
    return [path]


def memory_for(path: Path) -> int:
    """Bytes a fingerprint task may hold: float32 copies of about one layer, from file sizes."""
    try:
        size = sum(os.stat(p).st_size for p in checkpoint_files(path))
    except OSError:
        size = 0
    return _BASE_MEMORY + 2 * size  # conservative without reading headers on the driver


def _task(path: str, digest_path: str | None) -> dict[str, Any]:
    """What runs in a worker: one fingerprint or its failure, as plain data."""
    from companion.digests import Digests
    from companion.fingerprint.engine import fingerprint_or_failure

    digests = Digests(Path(digest_path) if digest_path else None)
    started = time.perf_counter()
    try:
        fp = fingerprint_or_failure(Path(path), Job(), digests)
    except Exception as exc:  # any bug or I/O error fails this checkpoint, not the fleet
        fp = ModelFingerprint(path=path, status="failed", error=f"{type(exc).__name__}: {exc}")
    fp.seconds = round(time.perf_counter() - started, 4)
    return fp.model_dump(mode="json")


def start_ray(address: str | None, num_cpus: int | None) -> float:
    """Connect to a cluster, or start a local one; the CPUs it offers."""
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(
                num_cpus=num_cpus or os.cpu_count(),
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
            )
    return float(ray.cluster_resources().get("CPU", 0.0))  # type: ignore[no-untyped-call]


def run_fleet(
    paths: list[Path], on_result: OnResult, job: Job, max_retries: int, digest_path: Path | None
) -> None:
    """Run every checkpoint as a task; call `on_result` on the driver as each one finishes."""
    import ray

    remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_task)
    pending = {
        remote.options(memory=memory_for(p), name="companion-fingerprint").remote(
            str(p), str(digest_path) if digest_path else None
        ): p
        for p in paths
    }
    done = 0
    while pending:
        job.check()
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            path = pending.pop(ref)
            try:
                fp = ModelFingerprint.model_validate(ray.get(ref))
            except ray.exceptions.RayError as exc:  # retries exhausted: record, go on
                fp = ModelFingerprint(path=str(path), status="failed", error=str(exc)[:500])
            done += 1
            job.report(f"{done}/{len(paths)} {Path(fp.path).name}", done / len(paths))
            on_result(fp)
