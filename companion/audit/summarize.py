"""Turn streamed accumulators and samples into per-tensor, per-role and per-layer results."""

from __future__ import annotations

import re
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass, field
from math import isfinite, sqrt
from pathlib import Path
from statistics import median
from typing import Any, Literal

import numpy as np

from companion.audit.alignment import ROLE_GROUP
from companion.audit.baselines import cross_layer, random_init_reference, shuffle_null
from companion.audit.derivation import name_derivations
from companion.audit.matching import MATCH_SAMPLE, Z_DECISIVE, match_test
from companion.audit.merge_fit import fit_candidates, not_named
from companion.audit.metrics import PairAccumulator, Unit, absdiff_quantiles, spearman
from companion.audit.pairing import Pair, Side, cross_samples
from companion.audit.rowstats import Findings
from companion.audit.schemas import (
    AlignedEvidence,
    AuditInput,
    AuditResult,
    Fingerprint,
    LayerPair,
    LayerSummary,
    MatchSummary,
    PairMetrics,
    RoleSummary,
    TensorBaselines,
    TensorResult,
    Unmatched,
)
from companion.audit.verdict import decide
from companion.jobs import Job
from companion.manifest import Manifest

TRAP_COSINE = 0.9
SIGNIFICANT_Z = 5.0


@dataclass
class Candidate:
    """One baseline model: its side, its pairs with A, and (the first only) streamed metrics."""

    side: Side
    pairs: list[Pair]
    accs: list[PairAccumulator]  # A against it, streamed for the first (the reference)
    unmatched: list[tuple[str, str, str]]  # from pairing A with it


@dataclass
class Streams:
    """Everything the streaming phase produced."""

    a: Side
    b: Side
    pairs: list[Pair]
    accs: list[PairAccumulator]
    a_to_b: dict[int, int]
    map_scores: dict[int, float]
    unmatched: list[tuple[str, str, str]]
    candidates: list[Candidate] = field(default_factory=list)  # the baselines, in order
    aligned: AlignedEvidence | None = None
    shapes: Findings | None = None  # shape-changing comparisons (shapes.py)
    plain: bool = False  # every matrix matched element-wise: no symmetry test ran (plain.py)
    unit: Unit = field(default_factory=Unit)  # standardized samples, for the baselines


def f(x: float | None) -> float | None:
    """A JSON-safe float (NaN and Inf become None)."""
    return float(x) if x is not None and isfinite(x) else None


def _med(values: list[float | None]) -> float | None:
    """Median of the defined values."""
    vals = [v for v in values if v is not None]
    return f(median(vals)) if vals else None


def _metrics(acc: PairAccumulator, sa: Any, sb: Any, numel: int) -> PairMetrics:
    """PairMetrics from an accumulator and the two samples."""
    m = acc.moments
    mean_a, std_a, mean_b, std_b = m.mean_std()
    raa, rbb, _ = m.raw()
    p50, p99 = absdiff_quantiles(sa, sb) if sa.size else (None, None)
    return PairMetrics(
        cosine=f(m.cosine()),
        pearson=f(m.pearson()),
        spearman=f(spearman(sa, sb)) if sa.size else None,
        rel_l2=f(sqrt(acc.sdd / raa)) if raa > 0 else None,
        norm_ratio=f(sqrt(rbb / raa)) if raa > 0 else None,
        mean_a=f(mean_a),
        std_a=f(std_a),
        mean_b=f(mean_b),
        std_b=f(std_b),
        absdiff_p50=f(p50),
        absdiff_p99=f(p99),
        absdiff_max=f(acc.max_abs) if m.n else None,
        identical_frac=f(acc.identical / m.n) if m.n else None,
        sign_agree=f(acc.sign_agree / m.n) if m.n else None,
        folded_pearson=f(acc.folded.pearson()) if acc.folded.n else None,
        nonfinite_a=acc.nonfinite_a,
        nonfinite_b=acc.nonfinite_b,
    )


def tensor_row(
    args: AuditInput, s: Streams, pair: Pair, acc: PairAccumulator, third: PairAccumulator | None
) -> TensorResult:
    """One per-tensor row with its baselines and significance."""
    ra, rb = s.a.ref(pair.name_a), s.b.ref(pair.name_b)
    sa, sb = s.a.samples[pair.name_a], s.b.samples[pair.name_b]
    metrics = _metrics(acc, sa, sb, ra.info.numel)
    base = TensorBaselines()
    z = p = z_cross = None
    notes: list[str] = []
    if ra.info.numel == 0:
        notes.append("zero-size tensor: nothing to compare")
    if acc.nonfinite_a or acc.nonfinite_b:
        notes.append(f"non-finite values skipped: {acc.nonfinite_a} in A, {acc.nonfinite_b} in B")
    if args.baselines:
        if nulls := shuffle_null(sa, sb, args.null_draws, args.seed):
            r_null, c_null = nulls
            base.shuffle_pearson_mean, base.shuffle_pearson_sd = f(r_null.mean), f(r_null.sd)
            base.shuffle_cosine_mean = f(c_null.mean)
            if metrics.pearson is not None:
                z, p = f(r_null.z(metrics.pearson)), f(r_null.p(metrics.pearson))
        others_b, others_a = cross_samples(s.a, s.b, pair)
        if cross := cross_layer(sa, others_b, s.unit):
            base.cross_layer_pearson_mean, base.cross_layer_pearson_sd = f(cross[0]), f(cross[1])
            if metrics.pearson is not None and cross[2] >= 2:
                z_cross = f((metrics.pearson - cross[0]) / max(cross[1], 1e-3))
        if within := cross_layer(sa, others_a, s.unit):
            base.within_a_pearson_mean = f(within[0])
        if metrics.mean_a is not None and metrics.std_a is not None:
            n = min(ra.info.numel, args.sample_size)
            cos0, r0 = random_init_reference(metrics.mean_a, metrics.std_a, n, args.seed)
            base.random_init_cosine, base.random_init_pearson = f(cos0), f(r0)
    if third is not None:
        base.third_cosine, base.third_pearson = (
            f(third.moments.cosine()),
            f(third.moments.pearson()),
        )
    trap = bool(
        metrics.cosine is not None
        and metrics.cosine >= TRAP_COSINE
        and z is not None
        and z < SIGNIFICANT_Z
    )
    return TensorResult(
        name_a=pair.name_a,
        name_b=pair.name_b,
        role=pair.key.role,
        group=ROLE_GROUP.get(pair.key.role, "other"),
        layer=pair.key.layer,
        layer_b=pair.layer_b,
        expert=pair.key.expert,
        shape=list(ra.info.shape),
        dtype_a=ra.info.dtype,
        dtype_b=rb.info.dtype,
        metrics=metrics,
        baselines=base,
        z=z,
        p=p,
        z_cross=z_cross,
        cosine_trap=trap,
        notes=notes,
    )


def _match_tests(args: AuditInput, s: Streams, job: Job) -> dict[str, list[MatchSummary]]:
    """Permutation-robust tests for every pair that collected projection features.

    A group stops at its first layer whose test is decisive above its null (z at least
    Z_DECISIVE, above every draw): that layer alone already clears the verdict's PERM_Z."""
    heads = s.a.ckpt.config.get("num_attention_heads")
    out: dict[str, list[MatchSummary]] = defaultdict(list)
    settled: set[str] = set()
    for pair, acc in sorted(zip(s.pairs, s.accs, strict=True), key=lambda x: x[0].key.layer or 0):
        job.check()
        if acc.features_a is None or acc.features_b is None or pair.key.layer is None:
            continue
        if pair.key.role == "up":
            kind: Literal["mlp_units", "heads"] = "mlp_units"
            group, size = "mlp", 1
        elif isinstance(heads, int) and heads > 1 and acc.features_a.shape[0] % heads == 0:
            kind, group, size = "heads", "attn", acc.features_a.shape[0] // heads
        else:
            continue
        if group in settled:
            continue
        draws = min(args.null_draws, 19)
        fa, fb, cap = acc.features_a, acc.features_b, args.max_match_units
        t = match_test(fa, fb, kind, size, draws, cap, job.check, True, MATCH_SAMPLE)
        if t is not None:
            out[group].append(
                MatchSummary(**t.model_dump(), layer=pair.key.layer, layer_b=pair.layer_b or 0)
            )
            if t.z >= Z_DECISIVE and t.p <= 1 / (1 + t.draws):
                settled.add(group)
    return out


def role_summary(group: str, rows: list[TensorResult], tests: list[MatchSummary]) -> RoleSummary:
    """Summarize one role group."""
    zs = [r.z for r in rows if r.z is not None]
    sig = [r for r in rows if r.z is not None and r.z >= SIGNIFICANT_Z]
    perm_z = f(sum(t.z for t in tests) / sqrt(len(tests))) if tests else None
    return RoleSummary(
        role=group,
        tensors=len(rows),
        cosine_median=_med([r.metrics.cosine for r in rows]),
        pearson_median=_med([r.metrics.pearson for r in rows]),
        spearman_median=_med([r.metrics.spearman for r in rows]),
        folded_pearson_median=_med([r.metrics.folded_pearson for r in rows]),
        shuffle_pearson_mean=_med([r.baselines.shuffle_pearson_mean for r in rows]),
        shuffle_pearson_sd=_med([r.baselines.shuffle_pearson_sd for r in rows]),
        shuffle_cosine_mean=_med([r.baselines.shuffle_cosine_mean for r in rows]),
        cross_layer_pearson_mean=_med([r.baselines.cross_layer_pearson_mean for r in rows]),
        within_a_pearson_mean=_med([r.baselines.within_a_pearson_mean for r in rows]),
        random_init_cosine=_med([r.baselines.random_init_cosine for r in rows]),
        random_init_pearson=_med([r.baselines.random_init_pearson for r in rows]),
        third_pearson_median=_med([r.baselines.third_pearson for r in rows]),
        z_median=_med(list(zs)),
        significant_frac=f(len(sig) / len(zs)) if zs else None,
        cosine_traps=sum(r.cosine_trap for r in rows),
        permutation=tests,
        permutation_z=perm_z,
    )


def _layers(rows: list[TensorResult]) -> list[LayerSummary]:
    """Per-layer means."""
    by: dict[tuple[int, int], list[TensorResult]] = defaultdict(list)
    for r in rows:
        if r.layer is not None and r.layer_b is not None:
            by[(r.layer, r.layer_b)].append(r)
    out = []
    for (la, lb), rs in sorted(by.items()):
        out.append(
            LayerSummary(
                layer=la,
                layer_b=lb,
                tensors=len(rs),
                pearson_mean=_mean([r.metrics.pearson for r in rs]),
                cross_layer_pearson_mean=_mean([r.baselines.cross_layer_pearson_mean for r in rs]),
                std_a_mean=_mean([r.metrics.std_a for r in rs]),
                std_b_mean=_mean([r.metrics.std_b for r in rs]),
            )
        )
    return out


def _mean(values: list[float | None]) -> float | None:
    """Mean of the defined values."""
    vals = [v for v in values if v is not None]
    return f(float(np.mean(vals))) if vals else None


def fingerprint(rows: list[TensorResult]) -> Fingerprint | None:
    """Correlate per-layer std profiles (each site z-scored across depth), concatenated."""
    by_site: dict[tuple[str, int | None], list[TensorResult]] = defaultdict(list)
    for r in rows:
        if r.layer is not None and r.metrics.std_a is not None and r.metrics.std_b is not None:
            by_site[(re.sub(r"\.\d+\.", ".N.", r.name_a), r.expert)].append(r)
    xa: list[float] = []
    xb: list[float] = []
    layers: set[int] = set()
    for rs in by_site.values():
        if len(rs) < 3:
            continue
        pa = np.array([r.metrics.std_a for r in rs], dtype=float)
        pb = np.array([r.metrics.std_b for r in rs], dtype=float)
        if pa.std() == 0 or pb.std() == 0:
            continue
        xa += list((pa - pa.mean()) / pa.std())
        xb += list((pb - pb.mean()) / pb.std())
        layers.update(r.layer for r in rs if r.layer is not None)
    if len(xa) < 3:
        return None
    return Fingerprint(pearson=f(float(np.corrcoef(xa, xb)[0, 1])), layers=len(layers))


CONSTANT = "constant in both models (a buffer or an untouched init, not evidence)"


def _constant_buffer(r: TensorResult) -> bool:
    """A tensor constant in both models (e.g. gains left at 1): equal in every such pair."""
    return r.metrics.std_a == 0 and r.metrics.std_b == 0 and r.metrics.nonfinite_a == 0


def _rows(args: AuditInput, s: Streams, job: Job, pool: Executor | None) -> list[TensorResult]:
    """Every per-tensor row, in pair order (on the pool's threads when given: the ranks,
    quantiles and FFTs of the baselines run in numpy without the GIL)."""
    ref = s.candidates[0] if s.candidates else None  # the third-model reference
    third_by_a = dict(zip((p.name_a for p in ref.pairs), ref.accs, strict=True)) if ref else {}

    def row(item: tuple[Pair, PairAccumulator]) -> TensorResult:
        job.check()
        return tensor_row(args, s, *item, third_by_a.get(item[0].name_a))

    items = list(zip(s.pairs, s.accs, strict=True))
    return list(pool.map(row, items) if pool else map(row, items))


def summarize(
    args: AuditInput, s: Streams, manifest: Manifest, job: Job, pool: Executor | None = None
) -> AuditResult:
    """Build the full result, verdict included (the per-tensor rows on `pool`, if given)."""
    ref = s.candidates[0] if s.candidates else None
    rows = _rows(args, s, job, pool)
    tests = _match_tests(args, s, job) if args.permutation_test and not s.plain else {}
    groups: dict[str, list[TensorResult]] = defaultdict(list)
    excluded = [Unmatched(name=n, side="a", reason=r) for n, r in s.a.excluded]
    excluded += [Unmatched(name=n, side="b", reason=r) for n, r in s.b.excluded]
    for r in rows:
        if _constant_buffer(r):
            excluded.append(Unmatched(name=r.name_a, side="a", reason=CONSTANT))
            continue
        groups[r.group].append(r)
    for g in tests:
        groups.setdefault(g, [])
    per_role = [role_summary(g, groups[g], tests.get(g, [])) for g in sorted(groups)]
    fp = fingerprint(rows)
    kept = [r for r in rows if not _constant_buffer(r)]
    verdict, reasons = decide(
        per_role, kept, fp, args, s.a.mtp + s.b.mtp, s.aligned, len(excluded), s.shapes
    )
    merge = fit_candidates(s)
    derivation = name_derivations(verdict, kept, s, per_role, merge)
    if merge is not None:
        merge.named = any(d.kind == "merge" for d in derivation)
        merge.note = "" if merge.named else not_named(merge, verdict)
    layer_map = [
        LayerPair(a=la, b=lb, score=f(s.map_scores.get(lb))) for la, lb in sorted(s.a_to_b.items())
    ]
    return AuditResult(
        a=s.a.ckpt.label,
        b=s.b.ckpt.label,
        baseline=ref.side.ckpt.label if ref else None,
        baselines=[c.side.ckpt.label for c in s.candidates],
        verdict=verdict,
        derivation=derivation,
        merge_fit=merge,
        reasons=reasons,
        excluded=excluded,
        aligned=s.aligned,
        per_role=per_role,
        per_layer=_layers(rows),
        layer_map=layer_map,
        per_tensor=rows,
        fingerprint=fp,
        unmatched=[Unmatched(name=n, side=side, reason=r) for n, side, r in s.unmatched],
        mtp=s.a.mtp + s.b.mtp,
        manifest=manifest,
        report_path=str(Path(args.report)) if args.report else None,
    )
