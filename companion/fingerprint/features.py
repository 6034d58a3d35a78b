"""Operators -> invariant features: cosines between centred residual-stream operators.

For operators M_a, M_b that a hidden permutation or rotation P maps to P M P^T, the
Frobenius inner products <M_a, M_b> and <M_a, M_b^T> are unchanged. After removing each
operator's identity part (its trace: the "recipe", shared by any two models of one shape)
and its scale, what is left are the weights' own fluctuations, which a fine-tune or a
quantizer only perturbs. Features are kept for pairs within a layer, between neighbouring
layers, and of every layer operator with the embedding and head operators.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
SKETCH_DIM = 256
SYMMETRIC = ("gg", "E", "H")


def centred(m: Array) -> Array | None:
    """M minus its identity part, scaled to unit Frobenius norm (None if nothing is left)."""
    c = m.astype(np.float64)
    c[np.diag_indices_from(c)] -= np.trace(c) / c.shape[0]
    n = float(np.linalg.norm(c))
    return (c / n).astype(np.float32) if n > 0 and np.isfinite(n) else None


def op_name(layer: int | None, kind: str) -> str:
    """The name of an operator: `E`, `H` or `L<layer>.<kind>`."""
    return kind if layer is None else f"L{layer}.{kind}"


def _symmetric(name: str) -> bool:
    """Whether an operator is symmetric (its transpose gives no new feature)."""
    return name.rsplit(".", 1)[-1] in SYMMETRIC


Spec = tuple[str, str, str, bool]  # (feature key, operator a, operator b, transpose b)


def _pair(a: str, b: str) -> list[Spec]:
    """Specs of one operator pair: <a, b>, plus <a, b^T> unless both are symmetric."""
    specs: list[Spec] = [(f"{a}|{b}", a, b, False)]
    if not (_symmetric(a) and _symmetric(b)):
        specs.append((f"{a}|{b}T", a, b, True))
    return specs


def layer_specs(current: list[str], previous: list[str], top: list[str]) -> list[Spec]:
    """One layer's features: own transposes, within the layer, with the previous layer, top."""
    names = sorted(current)
    specs: list[Spec] = []
    for i, a in enumerate(names):
        if not _symmetric(a):
            specs.append((f"{a}|{a}T", a, a, True))
        for b in [*names[i + 1 :], *sorted(previous), *sorted(top)]:
            specs += _pair(a, b)
    return specs


def top_specs(top: list[str]) -> list[Spec]:
    """The feature between the embedding and head operators."""
    return [("E|H", "E", "H", False)] if {"E", "H"} <= set(top) else []


def all_specs(layers: list[tuple[int, list[str]]], top: list[str]) -> list[Spec]:
    """Every feature spec of a model, from its operator layout alone (used to decode)."""
    specs = top_specs(top)
    prev: list[str] = []
    for layer, kinds in layers:
        cur = [op_name(layer, k) for k in kinds]
        specs += layer_specs(cur, prev, top)
        prev = cur
    return specs


def evaluate(specs: list[Spec], ops: dict[str, Array]) -> list[float]:
    """The inner product of every spec over centred operators."""
    out = []
    for _, a, b, transpose in specs:
        mb = ops[b].T if transpose else ops[b]
        out.append(float(np.vdot(ops[a], mb)))
    return out


def _bucket(key: str) -> tuple[int, float]:
    """A stable hash of a feature key to (bucket, sign) for the count sketch."""
    h = hashlib.blake2b(key.encode(), digest_size=8).digest()
    value = int.from_bytes(h, "little")
    return value % SKETCH_DIM, 1.0 if (value >> 40) & 1 else -1.0


def standardised(features: dict[str, float]) -> dict[str, float]:
    """Features centred over keys and scaled to unit norm (inner products are Pearson r)."""
    if not features:
        return {}
    vals = np.array(list(features.values()), dtype=np.float64)
    vals -= vals.mean()
    n = float(np.linalg.norm(vals))
    return dict(zip(features, (vals / n if n > 0 else vals).tolist(), strict=True))


def sketch(features: dict[str, float]) -> Array:
    """A fixed-width count sketch: its dot products estimate Pearson r over shared keys."""
    out = np.zeros(SKETCH_DIM, dtype=np.float64)
    for key, value in standardised(features).items():
        bucket, sign = _bucket(key)
        out[bucket] += sign * value
    n = float(np.linalg.norm(out))
    return (out / n if n > 0 else out).astype(np.float32)


def encode(values: Iterable[float]) -> str:
    """Floats as base64 float16 (portable TEXT in any SQL store)."""
    return base64.b64encode(np.asarray(list(values), dtype="<f2").tobytes()).decode("ascii")


def decode(text: str) -> Array:
    """The float32 array of `encode`."""
    return np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float32)


def gain_quantiles(gains: list[Array], k: int = 9) -> list[float]:
    """Quantiles of every norm gain divided by its median (sorted: permutation-invariant)."""
    if not gains:
        return []
    allg = np.concatenate([g / (np.median(np.abs(g)) or 1.0) for g in gains])
    return [round(float(x), 4) for x in np.quantile(allg, np.linspace(0.0, 1.0, k))]


def pearson_shared(a: dict[str, float], b: dict[str, float]) -> tuple[float | None, int]:
    """Exact Pearson r of two feature maps over their shared keys, and how many were shared."""
    keys = sorted(a.keys() & b.keys())
    if len(keys) < 3:
        return None, len(keys)
    x = np.array([a[k] for k in keys]) - np.mean([a[k] for k in keys])
    y = np.array([b[k] for k in keys]) - np.mean([b[k] for k in keys])
    den = float(np.linalg.norm(x) * np.linalg.norm(y))
    return (float(x @ y / den) if den > 0 else None), len(keys)
