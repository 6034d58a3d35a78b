"""Orchestrate an audit: open, sample, map layers, stream pairs in worker threads, summarize."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from companion.audit.adapter_merge import open_source
from companion.audit.aligned import compare_aligned
from companion.audit.alignment import map_layers, role_filter
from companion.audit.checkpoint import Checkpoint
from companion.audit.kernel import stream_pair
from companion.audit.matching import projection
from companion.audit.metrics import (
    PairAccumulator,
    StreamPlan,
    positions_for,
    read_sample,
)
from companion.audit.pairing import (
    Pair,
    Side,
    index_side,
    layer_score,
    layer_scores,
    make_pairs,
    shared_sites,
)
from companion.audit.prefetch import fetch_remote
from companion.audit.reader import Gate, Span
from companion.audit.remote_http import RemoteOptions
from companion.audit.schemas import AuditInput, AuditResult, Reason
from companion.audit.shapes import compare_shapes
from companion.audit.summarize import Candidate, Streams, summarize
from companion.digests import Digests
from companion.jobs import Job
from companion.manifest import InputFile, Manifest, sha256_file

if TYPE_CHECKING:
    from companion.audit.adapter import AdapterPair

T = TypeVar("T")
Array = np.ndarray[Any, Any]
_PROJ_DIMS = 64
# Tensors examined per checkpoint: above the largest real MoE checkpoints (~100k with scales);
# a hostile header with a million tiny tensors is cut here and the result says so.
MAX_TENSORS = 131_072
MAX_UNMATCHED = 1000
_NONE = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class AuditSetup:
    """How to run an audit: worker threads, the digest cache, the tool name for the manifest."""

    workers: int
    digest_path: Path | None
    tool: str
    remote: RemoteOptions | None = None  # how URLs and hf:// are read (None: the defaults)
    max_tensors: int = MAX_TENSORS


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
class _Run:
    """What every phase of one audit shares: the options, the worker pool and the progress."""

    args: AuditInput
    pool: ThreadPoolExecutor
    progress: Progress


def _sample_all(run: _Run, sides: list[Side]) -> None:
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


def _plan(
    a: Side, b: Side, pair: Pair, match_layers: set[int], args: AuditInput, gate: Gate
) -> StreamPlan:
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
    return StreamPlan(gain_a=gain_a, gain_b=gain_b, projection=proj, gate=gate)


def _stream_all(
    run: _Run, a: Side, b: Side, pairs: list[Pair], match_layers: set[int], gate: Gate
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


def _disk_order(a: Side, pairs: list[Pair]) -> list[int]:
    """Pair indices sorted by where A's tensor sits on disk (sequential reads)."""

    def key(i: int) -> tuple[str, int]:
        ref = a.ref(pairs[i].name_a)
        return str(ref.file.path), ref.file.span(ref.info)[0]

    return sorted(range(len(pairs)), key=key)


def _spans(a: Side, b: Side, pairs: list[Pair]) -> list[tuple[Span, Span]]:
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


def _map(a: Side, b: Side, sampled: bool) -> dict[int, int]:
    """The A -> B layer map: in order for equal depths, else from the sample scores."""
    la, lb = a.layers(), b.layers()
    if len(la) == len(lb):
        b_to_a = map_layers(la, lb, np.zeros((len(la), len(lb))))
    else:
        assert sampled, "unequal depths need the samples first"
        b_to_a = map_layers(*layer_scores(a, b))
    a_to_b: dict[int, int] = {}
    for layer_b, layer_a in sorted(b_to_a.items()):
        a_to_b.setdefault(layer_a, layer_b)
    return a_to_b


def _map_scores(a: Side, b: Side, a_to_b: dict[int, int]) -> dict[int, float]:
    """The score of each mapped B layer (only the mapped cells, not every pair of layers)."""
    sites = shared_sites(a, b)
    return {lb: layer_score(a, b, la, lb, sites) for la, lb in a_to_b.items()}


def _pick_layers(layers: list[int], count: int) -> set[int]:
    """Up to `count` layers spread evenly."""
    if count <= 0 or not layers:
        return set()
    idx = np.unique(np.linspace(0, len(layers) - 1, min(count, len(layers))).round().astype(int))
    return {layers[i] for i in idx}


def _cap(c: Checkpoint, limit: int) -> int:
    """Keep at most `limit` tensors of a checkpoint (first by name); how many were cut."""
    if len(c.tensors) <= limit:
        return 0
    cut = len(c.tensors) - limit
    c.tensors = {n: c.tensors[n] for n in sorted(c.tensors)[:limit]}
    return cut


def _bounded(result: AuditResult, skipped: int, limit: int) -> AuditResult:
    """Say when tensors were cut, and keep the unmatched list short."""
    reasons = list(result.reasons)
    if skipped:
        reasons.append(
            Reason(
                kind="tensor_cap",
                statement=f"{skipped:,} tensors past the first {limit:,} per checkpoint "
                "(by name) were not examined; no real model has that many. Next step: check "
                "the file's header, or audit a subset of roles with --roles.",
            )
        )
    unmatched = result.unmatched[:MAX_UNMATCHED]
    if len(result.unmatched) > MAX_UNMATCHED:
        left = len(result.unmatched) - MAX_UNMATCHED
        reasons.append(Reason(kind="unmatched_cap", statement=f"{left:,} more unmatched tensors."))
    return result.model_copy(update={"reasons": reasons, "unmatched": unmatched})


def _candidate_map(a: Side, b: Side, side: Side, a_to_b: dict[int, int]) -> dict[int, int]:
    """A's layers to a baseline's: in order at A's depth, else through B's layers (a merged
    B holds β·C layer by layer, so B finds C's layers; A, unrelated to C, would not)."""
    if len(side.layers()) == len(a.layers()):
        return _map(a, side, False)
    b_to_c = _map(b, side, True)
    return {la: b_to_c[lb] for la, lb in a_to_b.items() if lb in b_to_c}


def _candidates(
    a: Side,
    b: Side,
    a_to_b: dict[int, int],
    sides: list[Side],
    unmatched: list[tuple[str, str, str]],
) -> list[Candidate]:
    """Pair A with every baseline; what a baseline leaves unpaired joins `unmatched`."""
    out = []
    for i, side in enumerate(sides):
        pairs, left = make_pairs(a, side, _candidate_map(a, b, side, a_to_b))
        tag = f"baseline {i + 1}: " if len(sides) > 1 else ""
        unmatched += [(n, "baseline", tag + r) for n, s, r in left if s != "a"]
        unmatched += [  # tensors of A's name whose shape differs there: not comparable
            (n, "baseline", tag + r.replace(" in B (", " in the baseline ("))
            for n, s, r in left
            if s == "a" and r.startswith("shape ")
        ]
        out.append(Candidate(side, pairs, [], left))
    return out


def run_audit(
    args: AuditInput,
    paths: Sequence[Path | str | AdapterPair | None],
    job: Job,
    setup: AuditSetup,
) -> AuditResult:
    """Run a full audit of B against A (paths: A, B, then any baselines C₁ … Cₖ)."""
    started = time.monotonic()
    ckpts: list[Checkpoint] = []
    try:
        for p in paths:
            if p is not None:
                ckpts.append(open_source(p, setup.remote))
        skipped = sum(_cap(c, setup.max_tensors) for c in ckpts)
        roles = role_filter(args.roles)
        sides = [index_side(c, roles) for c in ckpts]
        names = [list(s.by_key.values()) for s in sides]  # remote files: the selected ranges
        fetch_remote(ckpts, names, job, setup.remote or RemoteOptions.from_settings())
        a, b = sides[0], sides[1]
        files = sorted({f.resolve() for c in ckpts for f in c.input_files})
        n_samples = sum(len(s.by_key) for s in sides)
        stream_bytes = sum(c.nbytes for c in ckpts[1:3]) * 2  # B, and the first baseline
        hash_bytes = sum(f.stat().st_size for f in files)
        progress = Progress(job, n_samples + stream_bytes + hash_bytes // 4)
        with (
            threadpool_limits(limits=1, user_api="blas"),
            ThreadPoolExecutor(max_workers=setup.workers, thread_name_prefix="audit") as pool,
        ):
            run = _Run(args, pool, progress)
            # Samples come free with the stream; read them first only when a layer map
            # needs them (depths differ).
            sampled = len({len(s.layers()) for s in sides}) > 1
            if sampled:
                _sample_all(run, sides)
            a_to_b = _map(a, b, sampled)
            pairs, unmatched = make_pairs(a, b, a_to_b)
            # The first baseline is streamed against A (the third-model reference); the
            # others are only sampled, for the merge fit: one more sample per tensor each.
            cands = _candidates(a, b, a_to_b, sides[2:], unmatched)
            ref = cands[0] if cands else None
            match_layers = (
                _pick_layers(sorted(a_to_b), args.match_layers) if args.permutation_test else set()
            )
            spans = _spans(a, b, pairs) + (_spans(a, ref.side, ref.pairs) if ref else [])
            digests = Digests(setup.digest_path)
            gate = Gate(files, spans, lambda n: progress.tick(n // 4, "reading"), digests)
            try:
                accs = _stream_all(run, a, b, pairs, match_layers, gate)
                if ref is not None:
                    ref.accs = _stream_all(run, a, ref.side, ref.pairs, set(), gate)
                inputs = gate.result() + [r for c in ckpts for r in c.remote_inputs()]
            finally:
                gate.close()
            _sample_all(run, sides)  # only what the stream missed
            aligned = None
            if args.permutation_test and a_to_b:
                job.report("aligning symmetries", 0.98)
                layers = sorted(_pick_layers(sorted(a_to_b), max(args.match_layers, 1)))
                aligned = compare_aligned(a, b, a_to_b, layers, args.seed, job)
            shape_layers = sorted(_pick_layers(sorted(a_to_b), max(args.match_layers, 1)))
            shapes = compare_shapes(a, b, a_to_b, unmatched, shape_layers, args.seed, job)
            map_scores = _map_scores(a, b, a_to_b)
            job.report("summarizing", 0.99)
            streams = Streams(a, b, pairs, accs, a_to_b, map_scores, unmatched, cands)
            streams.aligned, streams.shapes = aligned, shapes
            for p in sorted(shapes.inputs):  # tokenizers the vocabulary alignment read
                inputs.append(InputFile(path=str(p), size=p.stat().st_size, sha256=sha256_file(p)))
            manifest = Manifest(
                tool=setup.tool, parameters=args.model_dump(mode="json"), inputs=inputs
            )
            result = summarize(args, streams, manifest, job)
        bytes_read = sum(
            ra.info.end - ra.info.begin for p in pairs for ra in (a.ref(p.name_a), b.ref(p.name_b))
        )
        return _bounded(result, skipped, setup.max_tensors).model_copy(
            update={"bytes_read": bytes_read, "seconds": round(time.monotonic() - started, 3)}
        )
    finally:
        for c in ckpts:
            c.close()
