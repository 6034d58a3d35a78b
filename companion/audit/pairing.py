"""Index both checkpoints by scheme-independent keys, find the layer map, and pair tensors."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from companion.audit.alignment import Key, Named, map_layers, mtp_start, parse_name
from companion.audit.checkpoint import Checkpoint, TensorRef
from companion.audit.metrics import pearson

Array = np.ndarray[Any, Any]


@dataclass
class Side:
    """One checkpoint's tensors by key, with MTP tensors set aside."""

    ckpt: Checkpoint
    by_key: dict[Key, str]
    mtp: list[str]
    samples: dict[str, Array] = field(default_factory=dict)
    excluded: list[tuple[str, str]] = field(default_factory=list)

    def ref(self, name: str) -> TensorRef:
        """The tensor reference for a name."""
        return self.ckpt.tensors[name]

    def layers(self) -> list[int]:
        """Sorted ordinary (non-MTP) layer indices."""
        return sorted({k.layer for k in self.by_key if k.layer is not None})

    def at(self, site: tuple[str, str, int | None, str], layer: int | None) -> str | None:
        """The tensor name of a site at a layer, if present."""
        role, slot, expert, param = site
        return self.by_key.get(Key(role, slot, layer, expert, param))


@dataclass(frozen=True)
class Pair:
    """A tensor of A and its counterpart in B."""

    key: Key
    name_a: str
    name_b: str
    layer_b: int | None


_BUFFER = re.compile(
    r"(position_ids|inv_freq|rotary_emb|cos_cached|sin_cached|masked_bias|attn\.bias|"
    r"(^|\.)mask|causal_mask|_float_tensor)(\.|$)"
)


def buffer_reason(name: str, dtype: str, ndim: int) -> str | None:
    """Why a tensor is a buffer rather than a weight (integer dtype, known buffer name)."""
    if dtype in (
        "I64",
        "I32",
        "I16",
        "U64",
        "U32",
        "U16",
        "BOOL",
    ):  # I8/U8 may be quantized weights
        return f"buffer: {dtype} tensor (integer/bool buffers are not learned weights)"
    if _BUFFER.search(name) and not (name.endswith("attn.bias") and ndim == 1):
        return "buffer: position ids, rotary cache or mask (not a learned weight)"
    return None


def index_side(ckpt: Checkpoint, roles: set[str]) -> Side:
    """Parse every name (buffers set aside); duplicates of a key get their own name as slot."""
    start = mtp_start(ckpt.config)
    by_key: dict[Key, str] = {}
    mtp: list[str] = []
    excluded: list[tuple[str, str]] = []
    for name in sorted(ckpt.tensors):
        info = ckpt.tensors[name].info
        if (why := buffer_reason(name, info.dtype, len(info.shape))) is not None:
            excluded.append((name, why))
            continue
        named: Named = parse_name(name, start)
        if named.mtp:
            mtp.append(name)
            continue
        key = named.key
        if key in by_key:
            key = Key("other", name, key.layer, key.expert, key.param)
        if roles and key.role not in roles:
            continue
        by_key[key] = name
    return Side(ckpt, by_key, mtp, excluded=excluded)


def shared_sites(a: Side, b: Side) -> set[Any]:
    """Per-layer tensor sites (role within a layer) present in both models."""
    return {k.site() for k in a.by_key if k.layer is not None} & {
        k.site() for k in b.by_key if k.layer is not None
    }


def layer_score(a: Side, b: Side, layer_a: int, layer_b: int, sites: set[Any]) -> float:
    """Mean sample Pearson of one A layer against one B layer over the shared sites."""
    vals = []
    for site in sorted(sites, key=str):  # a fixed order: the same sum in every process
        na, nb = a.at(site, layer_a), b.at(site, layer_b)
        if na is None or nb is None or na not in a.samples or nb not in b.samples:
            continue
        if a.ref(na).info.shape != b.ref(nb).info.shape:
            continue
        if (r := pearson(a.samples[na], b.samples[nb])) is not None:
            vals.append(r)
    return float(np.mean(vals)) if vals else 0.0


def layer_scores(a: Side, b: Side) -> tuple[list[int], list[int], Array]:
    """Similarity of every A layer with every B layer: mean sample Pearson over shared sites."""
    la, lb = a.layers(), b.layers()
    sites = shared_sites(a, b)
    score = np.zeros((len(la), len(lb)))
    for i, layer_a in enumerate(la):
        for j, layer_b in enumerate(lb):
            score[i, j] = layer_score(a, b, layer_a, layer_b, sites)
    return la, lb, score


def layer_map(a: Side, b: Side) -> tuple[dict[int, int], dict[int, float]]:
    """Map A layers to B layers (identity in order for equal depth); score of each mapping."""
    la, lb, score = layer_scores(a, b)
    b_to_a = map_layers(la, lb, score)
    a_to_b: dict[int, int] = {}
    scores: dict[int, float] = {}
    for layer_b, layer_a in sorted(b_to_a.items()):
        a_to_b.setdefault(layer_a, layer_b)
        scores[layer_b] = float(score[la.index(layer_a), lb.index(layer_b)])
    return a_to_b, scores


def make_pairs(
    a: Side, b: Side, a_to_b: dict[int, int]
) -> tuple[list[Pair], list[tuple[str, str, str]]]:
    """Pair tensors of A and B by key through the layer map; list what stays unpaired."""
    pairs: list[Pair] = []
    unmatched: list[tuple[str, str, str]] = []
    used_b: set[str] = set()
    for key, name_a in sorted(a.by_key.items(), key=lambda kv: kv[1]):
        layer_b = a_to_b.get(key.layer) if key.layer is not None else None
        if key.layer is not None and layer_b is None:
            unmatched.append((name_a, "a", f"layer {key.layer} has no counterpart in B"))
            continue
        name_b = b.at(key.site(), layer_b)
        if name_b is None:
            unmatched.append((name_a, "a", "no tensor with this role in B"))
            continue
        sa, sb = a.ref(name_a).info.shape, b.ref(name_b).info.shape
        if sa != sb:
            unmatched.append((name_a, "a", f"shape {list(sa)} vs {list(sb)} in B ({name_b})"))
            used_b.add(name_b)
            continue
        used_b.add(name_b)
        pairs.append(Pair(key, name_a, name_b, layer_b))
    for name_b in sorted(set(b.by_key.values()) - used_b):
        unmatched.append((name_b, "b", "no counterpart in A"))
    return pairs, unmatched


def cross_samples(a: Side, b: Side, pair: Pair, limit: int = 8) -> tuple[list[Array], list[Array]]:
    """Samples of the same role at other layers: of B (cross-model) and of A (within-model)."""
    if pair.key.layer is None:
        return [], []
    site = pair.key.site()
    shape = a.ref(pair.name_a).info.shape
    others_b: list[Array] = []
    for layer in sorted(b.layers(), key=lambda x: abs(x - (pair.layer_b or 0))):
        name = b.at(site, layer)
        if layer != pair.layer_b and name in b.samples and b.ref(name).info.shape == shape:
            others_b.append(b.samples[name])
        if len(others_b) >= limit:
            break
    others_a: list[Array] = []
    for layer in sorted(a.layers(), key=lambda x: abs(x - (pair.key.layer or 0))):
        name = a.at(site, layer)
        if layer != pair.key.layer and name in a.samples and a.ref(name).info.shape == shape:
            others_a.append(a.samples[name])
        if len(others_a) >= limit:
            break
    return others_b, others_a


def group_layers(pairs: list[Pair]) -> dict[int, list[Pair]]:
    """Pairs by A layer."""
    out: dict[int, list[Pair]] = defaultdict(list)
    for p in pairs:
        if p.key.layer is not None:
            out[p.key.layer].append(p)
    return out
