"""Orchestrate an audit: open, sample, map layers, stream pairs in worker threads, summarize."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from companion.audit.adapter_merge import open_source
from companion.audit.aligned import compare_aligned
from companion.audit.alignment import map_layers, role_filter
from companion.audit.checkpoint import Checkpoint
from companion.audit.layerorder import find_order
from companion.audit.layerorder import findings as order_findings
from companion.audit.pairing import (
    Side,
    index_side,
    layer_score,
    layer_scores,
    make_pairs,
    shared_sites,
)
from companion.audit.passes import (
    Progress,
    Run,
    pair_spans,
    pick_layers,
    remap,
    restream,
    sample_all,
    stream_all,
)
from companion.audit.plain import identity_evidence, plain_match
from companion.audit.prefetch import fetch_remote
from companion.audit.reader import Gate
from companion.audit.remote_http import RemoteOptions
from companion.audit.schemas import AuditInput, AuditResult, Reason
from companion.audit.shapes import compare_shapes
from companion.audit.summarize import Candidate, Streams, summarize
from companion.audit.vocab import vocab_maps
from companion.digests import Digests
from companion.jobs import Job
from companion.manifest import InputFile, Manifest, sha256_file

if TYPE_CHECKING:
    from companion.audit.adapter import AdapterPair

Array = np.ndarray[Any, Any]
# Tensors examined per checkpoint: above the largest real MoE checkpoints (~100k with scales);
# a hostile header with a million tiny tensors is cut here and the result says so.
MAX_TENSORS = 131_072
MAX_UNMATCHED = 1000


@dataclass(frozen=True)
class AuditSetup:
    """How to run an audit: worker threads, the digest cache, the tool name for the manifest."""

    workers: int
    digest_path: Path | None
    tool: str
    remote: RemoteOptions | None = None  # how URLs and hf:// are read (None: the defaults)
    max_tensors: int = MAX_TENSORS


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
            run = Run(args, pool, progress)
            # Samples come free with the stream; read them first only when a layer map
            # needs them (depths differ).
            sampled = len({len(s.layers()) for s in sides}) > 1
            if sampled:
                sample_all(run, sides)
            a_to_b = _map(a, b, sampled)
            pairs, unmatched = make_pairs(a, b, a_to_b)
            # The first baseline is streamed against A (the third-model reference); the
            # others are only sampled, for the merge fit: one more sample per tensor each.
            cands = _candidates(a, b, a_to_b, sides[2:], unmatched)
            ref = cands[0] if cands else None
            # The matching test's row projections ride on the stream only when the early
            # stop cannot skip that test; else the match layers are streamed again for them
            # once the stop is ruled out (plain.py), so a plain match never pays for them.
            project = args.permutation_test and args.symmetry_tests == "always"
            match_layers = pick_layers(sorted(a_to_b), args.match_layers) if project else set()
            spans = pair_spans(a, b, pairs) + (pair_spans(a, ref.side, ref.pairs) if ref else [])
            digests = Digests(setup.digest_path)
            gate = Gate(files, spans, lambda n: progress.tick(n // 4, "reading"), digests)
            try:
                accs = stream_all(run, a, b, pairs, match_layers, gate)
                if ref is not None:
                    ref.accs = stream_all(run, a, ref.side, ref.pairs, set(), gate)
                inputs = gate.result() + [r for c in ckpts for r in c.remote_inputs()]
            finally:
                gate.close()
            sample_all(run, sides)  # only what the stream missed
            vocab = vocab_maps(a, b, args.seed)  # rows paired once, for every comparison
            order = find_order(a, b, vocab, args.seed, job.check)
            if order is not None and order.reordered:  # pair B's layers where they went
                a_to_b = order.a_to_b()
                pairs, accs, unmatched, match_layers = remap(
                    run, a, b, (pairs, accs, unmatched), a_to_b, match_layers
                )
            aligned = None
            plain = (
                plain_match(a, pairs, accs, unmatched) if args.symmetry_tests == "auto" else None
            )
            if plain is None and args.permutation_test and not project:
                match_layers = pick_layers(sorted(a_to_b), args.match_layers)
                accs = restream(run, a, b, (pairs, accs, set()), pairs, match_layers)
            if args.permutation_test and a_to_b:
                layers = sorted(pick_layers(sorted(a_to_b), max(args.match_layers, 1)))
                if plain is not None:
                    aligned = identity_evidence(a, b, a_to_b, layers, plain)
                else:
                    job.report("aligning symmetries", 0.98)
                    aligned = compare_aligned(a, b, a_to_b, layers, args.seed, job, vocab)
            shape_layers = sorted(pick_layers(sorted(a_to_b), max(args.match_layers, 1)))
            shapes = compare_shapes(a, b, a_to_b, unmatched, shape_layers, args.seed, job, vocab)
            if order is not None and order.reordered:
                shapes.add(order_findings(order))
            map_scores = _map_scores(a, b, a_to_b)
            job.report("summarizing", 0.99)
            streams = Streams(a, b, pairs, accs, a_to_b, map_scores, unmatched, cands)
            streams.aligned, streams.shapes, streams.plain = aligned, shapes, plain is not None
            for p in sorted(shapes.inputs):  # tokenizers the vocabulary alignment read
                inputs.append(InputFile(path=str(p), size=p.stat().st_size, sha256=sha256_file(p)))
            manifest = Manifest(
                tool=setup.tool, parameters=args.model_dump(mode="json"), inputs=inputs
            )
            result = summarize(args, streams, manifest, job, pool)
        bytes_read = sum(
            ra.info.end - ra.info.begin for p in pairs for ra in (a.ref(p.name_a), b.ref(p.name_b))
        )
        return _bounded(result, skipped, setup.max_tensors).model_copy(
            update={"bytes_read": bytes_read, "seconds": round(time.monotonic() - started, 3)}
        )
    finally:
        for c in ckpts:
            c.close()
