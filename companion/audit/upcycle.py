"""MoE upcycling: B's experts initialised from A's dense FFN, matched expert by expert.

Each expert's up/gate/down is compared element-wise with A's dense projection of the
mapped layer on the same sampled positions, against two nulls: the expert against A's
dense projections of *other* layers (cross-layer, same shape) and against A's shuffled
(shuffle null). An expert is "from A" when it beats both, as the direct rule does.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt
from statistics import median
from typing import Any

import numpy as np

from companion.audit.alignment import Key
from companion.audit.hidden import stouffer
from companion.audit.metrics import pearson, read_sample
from companion.audit.pairing import Side
from companion.audit.rowstats import MIN_GAP, RELATED_Z, Array, Findings
from companion.audit.schemas import Derivation, Reason
from companion.audit.upcycle_split import MAX_SPLIT_EXPERTS, split_expert
from companion.audit.width_types import Survival

SAMPLE = 16384
MAX_EXPERTS = 64  # experts tested per layer
FLOOR, MARGIN = 0.1, 0.1  # the direct rule's Pearson floor and cross-layer margin
SLOTS = ("up", "gate", "down")


@dataclass(frozen=True)
class ExpertMatch:
    """One expert against A's dense FFN: Pearson, the two nulls, and whether it is A's."""

    layer: int
    expert: int
    r: float
    cross: float
    shuffle_sd: float

    @property
    def z(self) -> float:
        """z against the shuffle null (mean 0)."""
        return self.r / max(self.shuffle_sd, 1e-9)

    @property
    def from_a(self) -> bool:
        """Beats the floor, the cross-layer null by the margin and the shuffle null by z 5."""
        return self.r >= FLOOR and self.r >= self.cross + MARGIN and self.z >= RELATED_Z


def _experts(side: Side, layer: int) -> list[int]:
    """Expert indices with an up projection at a layer."""
    return sorted(
        k.expert
        for k in side.by_key
        if k.layer == layer and k.role == "expert" and k.slot == "up" and k.expert is not None
    )


def _dense(side: Side, slot: str, layer: int) -> str | None:
    """A's dense FFN projection of a slot at a layer."""
    return side.by_key.get(Key(slot, slot, layer, None, "weight"))


def _shuffle_sd(sa: Array, sb: Array, seed: int) -> float:
    """Sd of Pearson under a shuffle of B's sample (19 draws)."""
    rng = np.random.default_rng([seed, sa.size, 61])
    vals = [pearson(sa, sb[rng.permutation(sb.size)]) or 0.0 for _ in range(19)]
    return float(np.std(vals)) or 1.0 / sqrt(max(sa.size, 1))


def _sample(side: Side, name: str, seed: int) -> Array:
    """The deterministic sample of a tensor (cached on the side)."""
    if name not in side.samples:
        side.samples[name] = read_sample(side.ref(name), SAMPLE, seed)
    return side.samples[name]


def match_expert(a: Side, b: Side, la: int, lb: int, expert: int, seed: int) -> ExpertMatch | None:
    """One expert's up/gate/down against A's dense FFN at la (and at other layers)."""
    rs, cross, sds = [], [], []
    for slot in SLOTS:
        nb = b.by_key.get(Key("expert", slot, lb, expert, "weight"))
        na = _dense(a, slot, la)
        if nb is None or na is None or a.ref(na).info.shape != b.ref(nb).info.shape:
            continue
        sa, sb = _sample(a, na, seed), _sample(b, nb, seed)
        if (r := pearson(sa, sb)) is None:
            continue
        rs.append(r)
        sds.append(_shuffle_sd(sa, sb, seed))
        for other in a.layers():
            no = _dense(a, slot, other)
            if other != la and no is not None and a.ref(no).info.shape == a.ref(na).info.shape:
                cross.append(pearson(_sample(a, no, seed), sb) or 0.0)
            if len(cross) >= 4 * len(rs):
                break
    if not rs:
        return None
    return ExpertMatch(la, expert, median(rs), float(np.mean(cross)) if cross else 0.0, max(sds))


def compare_upcycle(
    a: Side, b: Side, a_to_b: dict[int, int], layers: list[int], seed: int, job: Any
) -> Findings:
    """Experts of B against A's dense FFN on `layers` (when A is dense there and B has experts)."""
    out = Findings()
    found: list[ExpertMatch] = []
    splits: list[Survival] = []
    rng = np.random.default_rng([seed, 67])
    for la in layers:
        lb = a_to_b[la]
        experts = _experts(b, lb)
        if not experts or _experts(a, la) or _dense(a, "up", la) is None:
            continue
        out.handled |= {"expert", "mlp", "router"}
        for e in experts[:MAX_EXPERTS]:
            job.check()
            if (m := match_expert(a, b, la, lb, e, seed)) is not None:
                found.append(m)
                continue
            room = sum(t.layer == la for t in splits) < MAX_SPLIT_EXPERTS
            if room and (t := split_expert(a, b, la, lb, e, rng, job.check)) is not None:
                splits.append(t)
    if splits:
        out.add(split_findings(splits))
    if not found:
        return out
    good = [m for m in found if m.from_a]
    related = 2 * len(good) >= len(found)
    out.related = out.related or related
    out.reasons.append(_reason(found, good, related))
    if related:
        out.derivations.append(_derivation(found, good))
    return out


def split_findings(tests: list[Survival]) -> Findings:
    """Fine-grained experts: reason and moe_upcycled with per-expert figures."""
    z = stouffer([t.test.z for t in tests]) or 0.0
    gap = median(t.test.observed - float(t.test.null.mean()) for t in tests)
    related = z >= RELATED_Z and gap >= MIN_GAP
    good = [t for t in tests if t.test.z >= RELATED_Z]
    obs = median(t.test.observed for t in tests)
    null = median(float(t.test.null.mean()) for t in tests)
    out = Findings(related=related)
    out.reasons.append(
        Reason(
            kind="upcycle",
            role="expert",
            strength="strong" if related else "info",
            statement=(
                f"fine-grained experts ({tests[0].units_b} units each) assigned to A's "
                f"{tests[0].units_a} dense FFN units: {len(good)} of {len(tests)} experts match, "
                f"matched r {obs:.3f} vs null {null:.3f} (hidden-relabelling null), Stouffer z "
                f"{z:.1f}" + (" — split from A's FFN." if related else " — inside the null.")
            ),
            figure=obs,
            baseline=null,
            baseline_name="hidden-relabelling null (same assignment)",
            z=z,
        )
    )
    if related:
        fig: dict[str, float | int | str] = {
            "partition": "fine-grained",
            "experts_tested": len(tests),
            "experts_from_a": len(good),
            "units_a": tests[0].units_a,
            "units_per_expert": tests[0].units_b,
            "null_r": round(null, 3),
        }
        for t in tests:
            key = f"expert.{t.layer}.{t.kind.split()[-1]}"
            fig[key + ".match_r"] = round(t.test.observed, 3)
            fig[key + ".survivors"] = t.survivors
        out.derivations.append(
            Derivation(
                kind="moe_upcycled",
                figures=fig,
                confidence="high" if len(good) == len(tests) else "medium",
                statement=f"{len(good)} of {len(tests)} experts hold units of A's dense FFN.",
            )
        )
    return out


def _reason(found: list[ExpertMatch], good: list[ExpertMatch], related: bool) -> Reason:
    """The expert matches as one reason."""
    layers = sorted({m.layer for m in found})
    r = median(m.r for m in found)
    cross = median(m.cross for m in found)
    return Reason(
        kind="upcycle",
        role="expert",
        strength="strong" if related else "info",
        statement=(
            f"experts vs A's dense FFN in layers {layers}: {len(good)} of {len(found)} experts "
            f"match (median Pearson {r:.3f} vs cross-layer {cross:.3f}, shuffle null 0 ± "
            f"{median(m.shuffle_sd for m in found):.3f})"
            + (
                " — B's experts were initialised from A's FFN."
                if related
                else " — inside the nulls."
            )
        ),
        figure=r,
        baseline=cross,
        baseline_name="cross-layer (A's FFN of other layers)",
        z=median(m.z for m in found),
    )


def _derivation(found: list[ExpertMatch], good: list[ExpertMatch]) -> Derivation:
    """moe_upcycled with per-expert figures."""
    fig: dict[str, float | int | str] = {
        "experts_tested": len(found),
        "experts_from_a": len(good),
        "pearson_median": round(median(m.r for m in found), 4),
        "cross_layer_median": round(median(m.cross for m in found), 4),
    }
    for m in found:
        fig[f"expert.{m.layer}.{m.expert}.pearson"] = round(m.r, 4)
    return Derivation(
        kind="moe_upcycled",
        figures=fig,
        confidence="high" if len(good) == len(found) else "medium",
        statement=f"{len(good)} of {len(found)} experts are copies of A's dense FFN (upcycled).",
    )
