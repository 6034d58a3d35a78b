"""Orchestrate an audit: open, sample, map layers, stream pairs in worker threads, summarize."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from companion.audit.alignment import role_filter
from companion.audit.checkpoint import Checkpoint, open_checkpoint
from companion.audit.matching import projection
from companion.audit.metrics import PairAccumulator, StreamPlan, read_sample, stream_pair
from companion.audit.models import AuditInput, AuditResult
from companion.audit.pairing import Pair, Side, index_side, layer_map, make_pairs
from companion.audit.summarize import Streams, summarize
from companion.manifest import InputFile, Manifest
from companion.tools import ToolContext

T = TypeVar("T")
Array = np.ndarray[Any, Any]
_HASH_CHUNK = 1 << 22
_PROJ_DIMS = 64


class Progress:
    """Thread-safe progress over phases, throttled, checking cancellation on every tick."""

    def __init__(self, ctx: ToolContext, total: int) -> None:
        self.ctx, self.total, self.done = ctx, max(total, 1), 0
        self.lock = threading.Lock()
        self.last = 0.0
        self.message = "starting"

    def tick(self, amount: int, message: str | None = None) -> None:
        """Add work done; report at most every 0.1 s; raise Cancelled when cancelled."""
        self.ctx.check_cancelled()
        with self.lock:
            self.done += amount
            self.message = message or self.message
            now = time.monotonic()
            if now - self.last < 0.1:
                return
            self.last = now
            fraction = min(self.done / self.total, 1.0)
        self.ctx.progress(self.message, fraction)


def run_parallel(
    pool: ThreadPoolExecutor, jobs: Iterable[Callable[[], T]], ctx: ToolContext
) -> list[T]:
    """Run jobs on the pool; the first failure (or a cancel) stops the rest."""
    futures: list[Future[T]] = [pool.submit(job) for job in jobs]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


def _hash(path: Path, progress: Progress) -> InputFile:
    """sha256 of one input file, streamed, honouring cancellation."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
            progress.tick(len(chunk) // 4, f"hashing {path.name}")
    return InputFile(path=str(path), size=path.stat().st_size, sha256=h.hexdigest())


def _hasher(path: Path, progress: Progress) -> Callable[[], InputFile]:
    """A job hashing one file."""
    return lambda: _hash(path, progress)


def _sample_all(
    pool: ThreadPoolExecutor,
    sides: list[Side],
    args: AuditInput,
    progress: Progress,
    ctx: ToolContext,
) -> None:
    """Read the deterministic sample of every selected tensor on every side."""

    def job(side: Side, name: str) -> Callable[[], tuple[Side, str, Array]]:
        def run() -> tuple[Side, str, Array]:
            sample = read_sample(side.ref(name), args.sample_size, args.seed)
            progress.tick(1, f"sampling {name}")
            return side, name, sample

        return run

    jobs = [job(s, n) for s in sides for n in s.by_key.values()]
    for side, name, sample in run_parallel(pool, jobs, ctx):
        side.samples[name] = sample


def _gain(side: Side, pair_layer: int | None, slot: str) -> Array | None:
    """The full norm gain preceding a linear layer (for scale-invariant folding)."""
    name = side.at(("norm", slot, None, "weight"), pair_layer)
    if name is None:
        return None
    ref = side.ref(name)
    if ref.info.numel > (1 << 20):
        return None
    from companion.audit.safetensors import decode

    return np.asarray(decode(ref.file.read(name)), dtype=np.float64)


_FOLD = {
    "q": "attn_norm",
    "k": "attn_norm",
    "v": "attn_norm",
    "qkv": "attn_norm",
    "up": "mlp_norm",
    "gate": "mlp_norm",
}


def _plan(a: Side, b: Side, pair: Pair, match_layers: set[int], args: AuditInput) -> StreamPlan:
    """Decide folding and projection for one pair."""
    gain_a = gain_b = proj = None
    slot = _FOLD.get(pair.key.role)
    shape = a.ref(pair.name_a).info.shape
    if slot is not None and len(shape) == 2 and pair.key.expert is None:
        gain_a, gain_b = _gain(a, pair.key.layer, slot), _gain(b, pair.layer_b, slot)
        if gain_a is None or gain_b is None or gain_a.size != shape[1] or gain_b.size != shape[1]:
            gain_a = gain_b = None
    if (
        pair.key.layer in match_layers
        and pair.key.role in ("up", "q")
        and len(shape) == 2
        and pair.key.expert is None
    ):
        proj = projection(shape[1], _PROJ_DIMS, args.seed)
    return StreamPlan(gain_a=gain_a, gain_b=gain_b, projection=proj)


def _shift(side: Side, name: str) -> float:
    """The sample mean, used to shift sums for exact Pearson."""
    s = side.samples.get(name)
    if s is None or s.size == 0:
        return 0.0
    m = (
        float(np.nanmean(np.where(np.isfinite(s), s, np.nan)))
        if not np.isfinite(s).all()
        else float(s.mean())
    )
    return m if np.isfinite(m) else 0.0


def _stream_all(
    pool: ThreadPoolExecutor,
    a: Side,
    b: Side,
    pairs: list[Pair],
    match_layers: set[int],
    args: AuditInput,
    progress: Progress,
    ctx: ToolContext,
) -> list[PairAccumulator]:
    """Stream every pair on the pool."""

    def job(pair: Pair) -> Callable[[], PairAccumulator]:
        def run() -> PairAccumulator:
            ra, rb = a.ref(pair.name_a), b.ref(pair.name_b)
            shift = (_shift(a, pair.name_a), _shift(b, pair.name_b))
            return stream_pair(
                ra,
                rb,
                shift,
                _plan(a, b, pair, match_layers, args),
                lambda n: progress.tick(n, f"comparing {pair.name_a}"),
            )

        return run

    return run_parallel(pool, [job(p) for p in pairs], ctx)


def _pick_layers(layers: list[int], count: int) -> set[int]:
    """Up to `count` layers spread evenly."""
    if count <= 0 or not layers:
        return set()
    idx = np.unique(np.linspace(0, len(layers) - 1, min(count, len(layers))).round().astype(int))
    return {layers[i] for i in idx}


def run_audit(
    args: AuditInput, paths: tuple[Path, Path, Path | None], ctx: ToolContext
) -> AuditResult:
    """Run a full audit of B against A (and optionally C against A)."""
    started = time.monotonic()
    ckpts: list[Checkpoint] = []
    try:
        for p in paths:
            if p is not None:
                ckpts.append(open_checkpoint(p))
        roles = role_filter(args.roles)
        sides = [index_side(c, roles) for c in ckpts]
        a, b = sides[0], sides[1]
        third = sides[2] if len(sides) > 2 else None
        files = sorted({f.resolve() for c in ckpts for f in c.input_files})
        n_samples = sum(len(s.by_key) for s in sides)
        stream_bytes = sum(c.nbytes for c in ckpts[1:]) * 2
        hash_bytes = sum(f.stat().st_size for f in files)
        progress = Progress(ctx, n_samples + stream_bytes + hash_bytes // 4)
        with ThreadPoolExecutor(
            max_workers=ctx.settings.audit_workers, thread_name_prefix="audit"
        ) as pool:
            _sample_all(pool, sides, args, progress, ctx)
            a_to_b, map_scores = layer_map(a, b)
            pairs, unmatched = make_pairs(a, b, a_to_b)
            match_layers = (
                _pick_layers(sorted(a_to_b), args.match_layers) if args.permutation_test else set()
            )
            accs = _stream_all(pool, a, b, pairs, match_layers, args, progress, ctx)
            third_pairs: list[Pair] = []
            third_accs: list[PairAccumulator] = []
            if third is not None:
                a_to_c, _ = layer_map(a, third)
                third_pairs, third_unmatched = make_pairs(a, third, a_to_c)
                unmatched += [(n, "baseline", r) for n, side, r in third_unmatched if side != "a"]
                third_accs = _stream_all(pool, a, third, third_pairs, set(), args, progress, ctx)
            inputs = run_parallel(pool, [_hasher(f, progress) for f in files], ctx)
        ctx.progress("summarizing", 0.99)
        streams = Streams(
            a, b, third, pairs, accs, third_pairs, third_accs, a_to_b, map_scores, unmatched
        )
        manifest = Manifest(
            tool="audit.compare", parameters=args.model_dump(mode="json"), inputs=inputs
        )
        result = summarize(args, streams, manifest, ctx)
        bytes_read = sum(
            ra.info.end - ra.info.begin for p in pairs for ra in (a.ref(p.name_a), b.ref(p.name_b))
        )
        return result.model_copy(
            update={"bytes_read": bytes_read, "seconds": round(time.monotonic() - started, 3)}
        )
    finally:
        for c in ckpts:
            c.close()
