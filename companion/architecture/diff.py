"""Semantic diff of two ArchSpecs: what differs, what it means, and a distance score."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from companion.architecture.spec import ArchSpec
from companion.model import Model

# (field, label, weight); weights say how much a difference matters for "same architecture?".
FIELDS: tuple[tuple[str, str, float], ...] = (
    ("family", "family", 1.0),
    ("num_layers", "layers", 1.0),
    ("hidden_size", "hidden_size", 1.5),
    ("num_heads", "attention heads", 1.0),
    ("num_kv_heads", "key/value heads", 0.7),
    ("head_dim", "head_dim", 0.7),
    ("attention", "attention kind", 0.7),
    ("intermediate_size", "intermediate_size", 0.7),
    ("vocab_size", "vocab_size", 1.0),
    ("num_experts", "routed experts", 1.0),
    ("experts_per_token", "experts per token", 0.5),
    ("moe_intermediate_size", "moe_intermediate_size", 0.7),
    ("num_shared_experts", "shared experts", 0.5),
    ("first_k_dense", "first_k_dense_replace", 0.5),
    ("mtp_layers", "MTP layers", 0.3),
    ("kv_lora_rank", "kv_lora_rank", 0.5),
    ("q_lora_rank", "q_lora_rank", 0.3),
    ("partial_rotary_factor", "rotary fraction", 0.3),
    ("rope_theta", "rope_theta", 0.2),
    ("position", "position embedding", 0.5),
    ("norm", "norm", 0.3),
    ("norms_per_layer", "norms per layer", 0.2),
    ("qk_norm", "q/k norm", 0.3),
    ("qkv_bias", "q/k/v biases", 0.3),
    ("tie_word_embeddings", "tied embeddings", 0.3),
    ("sliding_window", "sliding_window", 0.2),
    ("attention_sinks", "attention sinks", 0.2),
    ("max_position_embeddings", "max_position_embeddings", 0.1),
)
# Fields that fix tensor shapes: if any differs, no weight can be copied unchanged everywhere.
SHAPE_FIELDS = (
    "hidden_size",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "num_experts",
    "moe_intermediate_size",
    "kv_lora_rank",
    "q_lora_rank",
)


class Difference(Model):
    """One differing field with its meaning."""

    field: str
    a: Any
    b: Any
    meaning: str
    weight: float
    distance: float


class ArchDiff(Model):
    """All differences between two specs and a distance in [0, 1] (0 = same architecture)."""

    a: str
    b: str
    differences: list[Difference] = Field(default_factory=list)
    same: list[str] = Field(default_factory=list)
    distance: float
    shapes_compatible: bool
    shape_blockers: list[str] = Field(default_factory=list)


def _fmt(v: Any) -> str:
    """A value as shown in messages."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) and abs(v) >= 10_000:
        return f"{v:,}"
    return "absent" if v is None else str(v)


def _distance(a: Any, b: Any) -> float:
    """0 for equal, up to 1: log-ratio for sizes, 1 for any other change."""
    if a == b:
        return 0.0
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return 1.0
    if isinstance(a, int | float) and isinstance(b, int | float):
        if a <= 0 or b <= 0:
            return 1.0
        return min(1.0, abs(math.log2(a / b)))
    return 1.0


def _meaning(field: str, label: str, a: Any, b: Any) -> str:
    """A sentence that says what the difference means."""
    fa, fb = _fmt(a), _fmt(b)
    if field == "first_k_dense":
        if not b:
            return f"B has no dense first layers: first_k_dense_replace {fa} vs {fb}."
        if not a:
            return f"A has no dense first layers: first_k_dense_replace {fa} vs {fb}."
        return f"Different number of dense first layers: {fa} vs {fb}."
    if field == "num_layers" and isinstance(a, int) and isinstance(b, int):
        deeper = "A" if a > b else "B"
        return f"{deeper} is deeper: {fa} vs {fb} layers; the layer stacks cannot align 1:1."
    if field == "mtp_layers":
        return f"Multi-token-prediction layers differ: {fa} vs {fb}."
    if field == "vocab_size":
        return (
            f"Vocabulary differs: {fa} vs {fb}; the embedding tables cannot be the same "
            "(different tokenizer, or padding)."
        )
    if field == "hidden_size":
        return f"Width differs: {fa} vs {fb}; no weight matrix can be copied unchanged."
    if field == "partial_rotary_factor":
        return f"Rotary fraction differs: {fa} vs {fb} of each head's dimensions get RoPE."
    if field == "family":
        return f"Different model families: {fa} vs {fb}."
    if field in ("num_experts", "num_shared_experts") and (not a or not b):
        which = "A" if not a else "B"
        return f"{which} has no {label}: {fa} vs {fb}."
    return f"Different {label}: {fa} vs {fb}."


def diff_specs(a: ArchSpec, b: ArchSpec, name_a: str = "A", name_b: str = "B") -> ArchDiff:
    """Compare two specs field by field, with meaning and a weighted distance."""
    diffs: list[Difference] = []
    same: list[str] = []
    num = den = 0.0
    for field, label, weight in FIELDS:
        va, vb = getattr(a, field), getattr(b, field)
        if va is None and vb is None:
            continue
        d = _distance(va, vb)
        num += weight * d
        den += weight
        if d == 0:
            same.append(field)
        else:
            diffs.append(
                Difference(
                    field=field,
                    a=va,
                    b=vb,
                    meaning=_meaning(field, label, va, vb),
                    weight=weight,
                    distance=round(d, 4),
                )
            )
    blockers = [d.field for d in diffs if d.field in SHAPE_FIELDS]
    diffs.sort(key=lambda d: -d.weight * d.distance)
    return ArchDiff(
        a=name_a,
        b=name_b,
        differences=diffs,
        same=same,
        distance=round(num / den, 4) if den else 1.0,
        shapes_compatible=not blockers,
        shape_blockers=blockers,
    )
