"""`companion audit BASE ADAPTER`: does this LoRA adapter belong to this base?

What the weights can show, and what they cannot:
- Fit. Every adapted module must exist in the base with the delta's shape (out x in); a
  misfit is an error naming the module and both shapes (`adapter.fit`). Fitting only says the
  adapter *can* be applied: any base of the same architecture fits.
- Alignment. An adapter holds no copy of its base, but training shapes it by the base's
  weights: the delta's row and column spaces (U, V from B and A) pick up directions already
  in W, so ||Uᵀ W V||_F is larger than for the same U, V against an unrelated W of the same
  spectrum (Hu et al. 2021, LoRA, section 7.3). The null is exactly that: W with its rows and
  columns permuted (the same singular values, unrelated directions), the same statistic run
  on every draw. Per-module z-scores are combined over modules, and the combined z has its
  own null from the same draws (empirical p). A significant alignment says the adapter was
  trained on this base or on a close relative of it (a fine-tune of it aligns too).
- No alignment is not evidence against: an untrained (B = 0) or lightly trained adapter
  fits any base. Then the verdict is inconclusive, never independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from companion.audit.adapter import Adapter, LoraModule, fit, open_adapter
from companion.audit.adapter_merge import module_delta
from companion.audit.checkpoint import Checkpoint, open_checkpoint
from companion.audit.schemas import AuditInput, AuditResult, Derivation, Reason, Verdict
from companion.audit.sketch import row_blocks
from companion.jobs import Job
from companion.manifest import build_manifest

Array = np.ndarray[Any, Any]
DRAWS = 199
MAX_MODULES = 96  # spread over the depth: enough power, bounded time
MAX_DIM = 65536  # wider deltas (vocabulary-sized) are left out of the alignment test
ALIGNED_Z = 5.0
ALIGNED_P = 0.01


@dataclass(frozen=True)
class ModuleFit:
    """One module's alignment against its permutation null."""

    module: str
    rank: int
    observed: float
    null: Array  # the statistic on every null draw
    rel_delta: float  # ||scaling B A||_F / ||W||_F

    @property
    def z(self) -> float:
        """Observed against the null, in null standard deviations."""
        return float((self.observed - self.null.mean()) / max(float(self.null.std()), 1e-12))

    def null_z(self) -> Array:
        """Every null draw standardized the same way."""
        out: Array = (self.null - self.null.mean()) / max(float(self.null.std()), 1e-12)
        return out


def _bases(left: Array, right: Array) -> tuple[Array, Array] | None:
    """Orthonormal bases of the delta's column space (out) and row space (in); None if zero."""
    if not np.any(left) or not np.any(right):
        return None
    u, _ = np.linalg.qr(left)
    v, _ = np.linalg.qr(right.T)
    return u, v


def _perms(rng: np.random.Generator, n: int) -> Array:
    """The identity then DRAWS permutations of range(n), as int32 rows."""
    out: Array = np.stack([np.arange(n)] + [rng.permutation(n) for _ in range(DRAWS)])
    return out.astype(np.int32)


def module_fit(base: Checkpoint, adapter: Adapter, m: LoraModule, seed: int) -> ModuleFit | None:
    """||Uᵀ W V||_F for the module and for DRAWS row/column permutations of W (streamed rows)."""
    left, right = module_delta(adapter, m)
    bases = _bases(left, right)
    if bases is None:
        return None
    u, v = bases
    out, inp = u.shape[0], v.shape[0]
    if max(out, inp) > MAX_DIM:
        return None
    r = u.shape[1]
    rng = np.random.default_rng([seed, out, inp, r])
    rows = np.stack([np.arange(out)] + [rng.permutation(out) for _ in range(DRAWS)]).astype(
        np.int32
    )
    cols = np.stack([np.arange(inp)] + [rng.permutation(inp) for _ in range(DRAWS)]).astype(
        np.int32
    )
    v_all = np.concatenate([v[c] for c in cols], axis=1).astype(np.float32)  # in x r(K+1)
    acc = np.zeros((DRAWS + 1, r, r))
    w_sq = 0.0
    ref = base.tensors[m.target]
    for start, block in row_blocks(ref, m.target):
        n = block.shape[0]
        w_sq += float(np.square(block, dtype=np.float64).sum())
        wv = (block @ v_all).astype(np.float64).reshape(n, DRAWS + 1, r)
        u_rows = u[rows[:, start : start + n]]  # (K+1) x n x r
        acc += np.einsum("knr,nks->krs", u_rows, wv)
    stats = np.sqrt(np.square(acc).sum(axis=(1, 2)))
    delta = sqrt(max(float(np.trace((left.T @ left) @ (right @ right.T))), 0.0))
    return ModuleFit(m.module, m.rank, float(stats[0]), stats[1:], delta / max(sqrt(w_sq), 1e-30))


def _spread(modules: list[LoraModule]) -> list[LoraModule]:
    """At most MAX_MODULES linear modules, spread evenly (embeddings and heads left out)."""
    modules = [m for m in modules if not m.embedding]
    if len(modules) <= MAX_MODULES:
        return modules
    idx = np.linspace(0, len(modules) - 1, MAX_MODULES).round().astype(int)
    return [modules[i] for i in sorted(set(idx))]


@dataclass(frozen=True)
class FitTest:
    """The combined alignment test over modules."""

    fits: list[ModuleFit]
    untrained: int  # modules whose B (or A) is all zero
    z: float
    p: float


def combine(fits: list[ModuleFit], untrained: int) -> FitTest:
    """Stouffer z over modules, with its null from the same permutation draws."""
    if not fits:
        return FitTest(fits, untrained, 0.0, 1.0)
    z = sum(f.z for f in fits) / sqrt(len(fits))
    null = np.sum([f.null_z() for f in fits], axis=0) / sqrt(len(fits))
    p = (1 + int(np.count_nonzero(null >= z))) / (null.size + 1)
    return FitTest(fits, untrained, float(z), float(p))


def fit_test(base: Checkpoint, adapter: Adapter, seed: int, job: Job) -> FitTest:
    """Run the alignment test on the adapter's modules."""
    fits: list[ModuleFit] = []
    chosen = _spread(adapter.modules)
    untrained = 0
    for i, m in enumerate(chosen):
        job.report(f"aligning {m.module}", i / max(len(chosen), 1))
        job.check()
        f = module_fit(base, adapter, m, seed)
        if f is None:
            untrained += 1
        else:
            fits.append(f)
    return combine(fits, untrained)


def _reasons(adapter: Adapter, base: Checkpoint, t: FitTest) -> tuple[Verdict, list[Reason]]:
    """The verdict and its reasons, strongest first."""
    n = len(adapter.modules)
    fit_reason = Reason(
        kind="adapter_fit",
        statement=f"All {n} adapted modules exist in the base with the delta's shape "
        f"({len(adapter.replacements)} whole tensors replaced). Fitting only shows the adapter "
        "can be applied: any base of the same architecture fits.",
    )
    aligned = t.z >= ALIGNED_Z and t.p <= ALIGNED_P
    draws = DRAWS
    align = Reason(
        kind="adapter_alignment",
        strength="strong" if aligned else "weak",
        statement=(
            f"The adapter's update directions align with this base's weights: ||Uᵀ W V|| "
            f"over {len(t.fits)} modules, combined z {t.z:.1f} against W with rows and columns "
            f"permuted (same spectrum, unrelated directions; p {t.p:.3g}, {draws} draws). "
            "Training on this base (or a close relative) leaves this trace."
            if aligned
            else f"No alignment of the adapter's update directions with this base beyond "
            f"its permutation null (combined z {t.z:.1f}, p {t.p:.3g}, {len(t.fits)} modules, "
            f"{draws} draws). That is not evidence against: a lightly trained adapter fits "
            "any base of these shapes."
        ),
        figure=t.z,
        baseline=0.0,
        baseline_name="rows and columns of W permuted",
        z=t.z,
        p=t.p,
    )
    reasons = [align, fit_reason]
    if t.untrained:
        reasons.append(
            Reason(
                kind="adapter_untrained",
                statement=f"{t.untrained} modules have an all-zero lora_B (or lora_A): PEFT's "
                "initial state; they change nothing and carry no trace of any base.",
            )
        )
    reasons.append(
        Reason(
            kind="adapter_metadata",
            statement=f"adapter_config.json names its base as {adapter.base_name!r} "
            "(metadata, not checked against weights).",
        )
    )
    return ("derived" if aligned else "inconclusive"), reasons


def run_fit(
    args: AuditInput, base_path: Path, adapter_path: Path, job: Job, tool: str
) -> AuditResult:
    """Audit whether an adapter folder belongs to a base (fit, then weight alignment)."""
    base = open_checkpoint(base_path)
    adapter: Adapter | None = None
    try:
        adapter = fit(open_adapter(adapter_path), base)
        t = fit_test(base, adapter, args.seed, job)
        verdict, reasons = _reasons(adapter, base, t)
        files = base.input_files + adapter.inputs
        manifest = build_manifest(tool, args.model_dump(mode="json"), files)
    finally:
        base.close()
        if adapter is not None:
            adapter.close()
    return AuditResult(
        a=str(base_path),
        b=str(adapter_path),
        verdict=verdict,
        derivation=[_derivation(adapter, t, verdict)],
        reasons=reasons,
        per_role=[],
        per_layer=[],
        layer_map=[],
        per_tensor=[],
        manifest=manifest,
    )


def _derivation(adapter: Adapter, t: FitTest, verdict: Verdict) -> Derivation:
    """The adapter's figures: modules, rank, scaling, alignment and the delta's size."""
    ranks = sorted({m.rank for m in adapter.modules}) or [0]
    figures: dict[str, float | int | str] = {
        "modules": len(adapter.modules),
        "rank": ranks[-1],
        "scaling": round(adapter.modules[0].scaling, 6) if adapter.modules else 0.0,
        "alignment_z": round(t.z, 3),
        "alignment_p": round(t.p, 5),
        "untrained_modules": t.untrained,
    }
    if t.fits:
        figures["delta_rel_l2_median"] = round(median(f.rel_delta for f in t.fits), 5)
    return Derivation(
        kind="lora_adapter",
        figures=figures,
        confidence="high" if verdict == "derived" else "low",
        statement="A LoRA adapter trained on this base (or a close relative)."
        if verdict == "derived"
        else "A LoRA adapter that fits this base; the weights cannot tell if it was trained on it.",
    )
