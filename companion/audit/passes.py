"""The streamed passes of an audit: progress, the worker pool, the samples, each pair's plan
(folding, projections), the pass over every pair in A's on-disk order, the reader's spans,
and re-pairing after a new layer map (only the changed pairs are streamed again)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from companion.audit.kernel import stream_pair
from companion.audit.matching import projection
from companion.audit.metrics import PairAccumulator, StreamPlan, positions_for, read_sample
from companion.audit.pairing import Pair, Side, make_pairs
from companion.audit.reader import Gate, Span
from companion.audit.schemas import AuditInput
from companion.jobs import Job

T = TypeVar("T")
Array = np.ndarray[Any, Any]
_PROJ_DIMS = 64
_NONE = np.empty(0, dtype=np.int64)


class Progress:
    """Thread-safe progress over phases, throttled, checking cancellation on every tick."""

    def __init__(self, job: Job, total: int) -> None:
        self.job, self.total, self.done = job, max(total, 1), 0
        self.lock = threading.Lock()
        self.last = 0.0
        self.message = "starting"

    def tick(self, amount: int, message: str | None = None) -> None:
        """Add work done; report at most every 0.1 s; raise Cancelled when cancelled."""
        self.job.check()
        with self.lock:
            self.done += amount
            self.message = message or self.message
            now = time.monotonic()
            if now - self.last < 0.1:
                return
            self.last = now
            fraction = min(self.done / self.total, 1.0)
        self.job.report(self.message, fraction)


def run_parallel(pool: ThreadPoolExecutor, jobs: Iterable[Callable[[], T]]) -> list[T]:
    """Run jobs on the pool; the first failure (or a cancel) stops the rest."""
    futures: list[Future[T]] = [pool.submit(job) for job in jobs]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


@dataclass
class Run:
    """What every phase of one audit shares: the options, the worker pool and the progress."""

    args: AuditInput
    pool: ThreadPoolExecutor
    progress: Progress


def sample_all(run: Run, sides: list[Side]) -> None:
    """Read the deterministic sample of every selected tensor on every side."""
    args, progress = run.args, run.progress

    def job(side: Side, name: str) -> Callable[[], tuple[Side, str, Array]]:
        def run() -> tuple[Side, str, Array]:
            sample = read_sample(side.ref(name), args.sample_size, args.seed)
            progress.tick(1, f"sampling {name}")
            return side, name, sample

        return run

    jobs = [job(s, n) for s in sides for n in s.by_key.values() if n not in s.samples]
    for side, name, sample in run_parallel(run.pool, jobs):
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


def projected(a: Side, pair: Pair, match_layers: set[int]) -> bool:
    """Whether the stream takes this pair's row projections (the matching test's features)."""
    return (
        pair.key.layer in match_layers
        and pair.key.role in ("up", "q")
        and len(a.ref(pair.name_a).info.shape) == 2
        and pair.key.expert is None
    )


def _plan(
    a: Side, b: Side, pair: Pair, match_layers: set[int], args: AuditInput, gate: Gate | None
) -> StreamPlan:
    """Decide folding and projection for one pair."""
    gain_a = gain_b = proj = None
    slot = _FOLD.get(pair.key.role)
    shape = a.ref(pair.name_a).info.shape
    if slot is not None and len(shape) == 2 and pair.key.expert is None:
        gain_a, gain_b = _gain(a, pair.key.layer, slot), _gain(b, pair.layer_b, slot)
        if gain_a is None or gain_b is None or gain_a.size != shape[1] or gain_b.size != shape[1]:
            gain_a = gain_b = None
    if projected(a, pair, match_layers):
        proj = projection(shape[1], _PROJ_DIMS, args.seed)
    return StreamPlan(gain_a=gain_a, gain_b=gain_b, projection=proj, gate=gate)


def stream_all(
    run: Run, a: Side, b: Side, pairs: list[Pair], match_layers: set[int], gate: Gate | None
) -> list[PairAccumulator]:
    """Stream every pair on the pool (in A's on-disk order, the order the reader follows)."""
    args, progress = run.args, run.progress

    def positions(side: Side, name: str) -> Array:
        if name in side.samples:
            return _NONE
        return positions_for(side.ref(name).info.numel, args.sample_size, args.seed)

    def job(pair: Pair) -> Callable[[], PairAccumulator]:
        def compare() -> PairAccumulator:
            ra, rb = a.ref(pair.name_a), b.ref(pair.name_b)
            pos = (positions(a, pair.name_a), positions(b, pair.name_b))
            acc, sa, sb = stream_pair(
                ra,
                rb,
                _plan(a, b, pair, match_layers, args, gate),
                pos,
                lambda n: progress.tick(n, f"comparing {pair.name_a}"),
            )
            if pos[0].size or ra.info.numel == 0:
                a.samples.setdefault(pair.name_a, sa)
            if pos[1].size or rb.info.numel == 0:
                b.samples.setdefault(pair.name_b, sb)
            return acc

        return compare

    order = _disk_order(a, pairs)
    done = run_parallel(run.pool, [job(pairs[i]) for i in order])
    out: list[PairAccumulator | None] = [None] * len(pairs)
    for i, acc in zip(order, done, strict=True):
        out[i] = acc
    return [acc for acc in out if acc is not None]


def remap(
    run: Run,
    a: Side,
    b: Side,
    done: tuple[list[Pair], list[PairAccumulator], list[tuple[str, str, str]]],
    a_to_b: dict[int, int],
    old_match: set[int],
) -> tuple[list[Pair], list[PairAccumulator], list[tuple[str, str, str]], set[int]]:
    """Pairs through a new layer map; streams only the pairs (or match layers) that changed."""
    old_pairs, old_accs, old_unmatched = done
    pairs, unmatched = make_pairs(a, b, a_to_b)
    unmatched += [u for u in old_unmatched if u[1] == "baseline"]
    match = pick_layers(sorted(a_to_b), run.args.match_layers) if old_match else set()
    accs = restream(run, a, b, (old_pairs, old_accs, old_match), pairs, match)
    return pairs, accs, unmatched, match


def restream(
    run: Run,
    a: Side,
    b: Side,
    done: tuple[list[Pair], list[PairAccumulator], set[int]],
    pairs: list[Pair],
    match: set[int],
) -> list[PairAccumulator]:
    """The accumulators of `pairs` with projections in the `match` layers: those streamed
    before (`done`: pairs, accumulators, match layers) are kept when they already had the
    projections they need, and only the others are streamed again (without the reader)."""
    old_pairs, old_accs, old_match = done
    kept = {
        (p.name_a, p.name_b, projected(a, p, old_match)): acc
        for p, acc in zip(old_pairs, old_accs, strict=True)
    }
    keys = [(p.name_a, p.name_b, projected(a, p, match)) for p in pairs]
    todo = [p for p, k in zip(pairs, keys, strict=True) if k not in kept]
    new = iter(stream_all(run, a, b, todo, match, None))
    return [kept[k] if k in kept else next(new) for k in keys]


def _disk_order(a: Side, pairs: list[Pair]) -> list[int]:
    """Pair indices sorted by where A's tensor sits on disk (sequential reads)."""

    def key(i: int) -> tuple[str, int]:
        ref = a.ref(pairs[i].name_a)
        return str(ref.file.path), ref.file.span(ref.info)[0]

    return sorted(range(len(pairs)), key=key)


def pair_spans(a: Side, b: Side, pairs: list[Pair]) -> list[tuple[Span, Span]]:
    """The byte ranges the stream will read, pair by pair, in streaming order."""

    def span(side: Side, name: str) -> Span | None:
        ref = side.ref(name)
        return Span(ref.file.path.resolve(), *ref.file.span(ref.info)) if ref.file.local else None

    out = []
    for i in _disk_order(a, pairs):
        sa, sb = span(a, pairs[i].name_a), span(b, pairs[i].name_b)
        if sa is None:  # a remote side reads nothing locally: an empty span keeps the step
            if sb is None:
                continue
            sa = Span(sb.path, sb.begin, sb.begin)
        elif sb is None:
            sb = Span(sa.path, sa.begin, sa.begin)
        out.append((sa, sb))
    return out


def pick_layers(layers: list[int], count: int) -> set[int]:
    """Up to `count` layers spread evenly."""
    if count <= 0 or not layers:
        return set()
    idx = np.unique(np.linspace(0, len(layers) - 1, min(count, len(layers))).round().astype(int))
    return {layers[i] for i in idx}
