"""Residual-stream operators of a checkpoint, read one layer at a time.

Every operator is a hidden x hidden matrix in the residual basis, built so that the exact
symmetries of a transformer cancel inside it:

- `qk` = sum over heads of (W_Q^h D)^T (W_K^h D): attention rotations A, A^-T and head
  permutations cancel; D (the preceding norm's gains) is folded in, so norm rescales cancel;
- `ov` = sum over heads of W_O^h W_V^h D: value/output rotations B, B^-1 cancel;
- `du` = W_down (W_up D): FFN unit permutations and up/down unit rescales cancel;
- `gg` = (W_gate D)^T (W_gate D): unit permutations cancel;
- `E` = E^T E over every embedding row (vocabulary order and size barely matter) and
  `H` = (H D_f)^T (H D_f) for the output head with the final norm folded in.

A hidden-dimension permutation (or rotation) P turns every operator M into P M P^T, which
leaves the inner products between operators unchanged: those are the fingerprint's features.
Memory stays bounded by one layer's tensors plus a few hidden x hidden operators.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from companion.audit.alignment import Key, parse_name
from companion.audit.checkpoint import Checkpoint
from companion.audit.safetensors import decode
from companion.jobs import Job

Array = np.ndarray[Any, Any]
LAYER_ROLES = ("q", "k", "v", "o", "gate", "up", "down")
_WRITES = ("o", "down")  # rows in the residual basis; the other roles read it by column


@dataclass
class Layout:
    """Tensor names of one checkpoint by (layer, role), and the top-level ones."""

    layers: dict[int, dict[str, str]] = field(default_factory=dict)
    top: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _role(key: Key) -> str | None:
    """The role name the fingerprint uses for a parsed tensor key (None: not used)."""
    if key.param != "weight" or key.expert is not None:
        return None
    if key.role == "norm":
        return {"attn_norm": "attn_norm", "mlp_norm": "mlp_norm", "final": "final_norm"}.get(
            key.slot
        )
    if key.role == "embedding":
        return "embedding" if key.slot == "tok" else None
    return key.role if key.role in (*LAYER_ROLES, "lm_head") else None


def layout(ckpt: Checkpoint) -> Layout:
    """Sort a checkpoint's tensors into the roles the operators read."""
    out = Layout()
    for name in sorted(ckpt.tensors):
        named = parse_name(name)
        role = None if named.mtp else _role(named.key)
        if role is None:
            out.skipped.append(name)
        elif named.key.layer is None:
            out.top.setdefault(role, name)
        else:
            out.layers.setdefault(named.key.layer, {}).setdefault(role, name)
    return out


def load(ckpt: Checkpoint, name: str) -> Array:
    """One tensor as float32 in its stored shape."""
    ref = ckpt.tensors[name]
    flat = decode(ref.file.read(name), np.float32)
    return np.asarray(flat, dtype=np.float32).reshape(ref.info.shape)


def _gain(ckpt: Checkpoint, names: dict[str, str], role: str, hidden: int) -> Array:
    """A norm's gain vector (ones when the model has none here)."""
    if role in names:
        g = load(ckpt, names[role]).reshape(-1)
        if g.shape[0] == hidden:
            return g
    return np.ones(hidden, dtype=np.float32)


def _heads(rows_q: int, rows_kv: int, config: dict[str, Any]) -> tuple[int, int] | None:
    """(query heads, key/value heads) for grouped attention; None when rows are equal."""
    if rows_q == rows_kv:
        return None
    heads = config.get("num_attention_heads") or config.get("n_head")
    if not isinstance(heads, int) or heads <= 0 or rows_q % heads:
        return None
    d = rows_q // heads
    return (heads, rows_kv // d) if rows_kv % d == 0 and rows_kv // d > 0 else None


def _grouped(wq: Array, wk: Array, config: dict[str, Any]) -> Array | None:
    """sum_h Wq^h^T Wk^{g(h)}, or Wq^T Wk when both have the same rows."""
    groups = _heads(wq.shape[0], wk.shape[0], config)
    if groups is None:
        return wq.T @ wk if wq.shape == wk.shape else None
    heads, kv = groups
    d = wq.shape[0] // heads
    q = wq.reshape(kv, heads // kv, d, -1).sum(axis=1).reshape(kv * d, -1)
    return np.asarray(q.T @ wk)


def _ov(wo: Array, wv: Array, config: dict[str, Any]) -> Array | None:
    """sum_h Wo^h Wv^{g(h)} (hidden x hidden)."""
    groups = _heads(wo.shape[1], wv.shape[0], config)
    if groups is None:
        return wo @ wv if wo.shape[1] == wv.shape[0] else None
    heads, kv = groups
    d = wo.shape[1] // heads
    o = wo.reshape(wo.shape[0], kv, heads // kv, d).sum(axis=2).reshape(wo.shape[0], kv * d)
    return np.asarray(o @ wv)


def _fits(ckpt: Checkpoint, role: str, name: str, hidden: int) -> bool:
    """Whether a layer tensor is a matrix whose residual side is `hidden` wide (norms: yes)."""
    if role not in LAYER_ROLES:
        return True
    shape = ckpt.tensors[name].info.shape
    return len(shape) == 2 and shape[0 if role in _WRITES else 1] == hidden


def layer_operators(ckpt: Checkpoint, names: dict[str, str], hidden: int) -> dict[str, Array]:
    """The qk, ov, du and gg operators of one layer (those its tensors allow)."""
    ops: dict[str, Array] = {}
    names = {r: n for r, n in names.items() if _fits(ckpt, r, n, hidden)}
    d_attn = _gain(ckpt, names, "attn_norm", hidden)
    d_mlp = _gain(ckpt, names, "mlp_norm", hidden)
    if {"q", "k"} <= names.keys():
        qk = _grouped(load(ckpt, names["q"]) * d_attn, load(ckpt, names["k"]) * d_attn, ckpt.config)
        if qk is not None:
            ops["qk"] = qk
    if {"o", "v"} <= names.keys():
        ov = _ov(load(ckpt, names["o"]), load(ckpt, names["v"]) * d_attn, ckpt.config)
        if ov is not None:
            ops["ov"] = ov
    if {"down", "up"} <= names.keys():
        down, up = load(ckpt, names["down"]), load(ckpt, names["up"]) * d_mlp
        if down.shape[1] == up.shape[0]:
            ops["du"] = down @ up
        del down, up
    if "gate" in names:
        g = load(ckpt, names["gate"]) * d_mlp
        ops["gg"] = g.T @ g
    return {k: v for k, v in ops.items() if v.shape == (hidden, hidden)}


def hidden_size(ckpt: Checkpoint, lay: Layout) -> int | None:
    """The residual width, from the embedding or the first layer's q or up projection."""
    if "embedding" in lay.top:
        return int(ckpt.tensors[lay.top["embedding"]].info.shape[-1])
    for names in lay.layers.values():
        for role in ("q", "up", "gate"):
            if role in names:
                return int(ckpt.tensors[names[role]].info.shape[-1])
    return None


def top_operators(ckpt: Checkpoint, lay: Layout, hidden: int) -> dict[str, Array]:
    """E^T E of the embedding and (H D_f)^T (H D_f) of the output head."""
    ops: dict[str, Array] = {}
    if "embedding" in lay.top:
        e = load(ckpt, lay.top["embedding"])
        if e.ndim == 2 and e.shape[1] == hidden:
            ops["E"] = e.T @ e
        del e
    if "lm_head" in lay.top:
        h = load(ckpt, lay.top["lm_head"]) * _gain(ckpt, lay.top, "final_norm", hidden)
        if h.ndim == 2 and h.shape[1] == hidden:
            ops["H"] = h.T @ h
    return ops


def stream_layers(
    ckpt: Checkpoint, lay: Layout, hidden: int, job: Job
) -> Iterator[tuple[int, dict[str, Array]]]:
    """(layer index, operators) for each layer in order, reporting progress."""
    order = sorted(lay.layers)
    for i, layer in enumerate(order):
        job.check()
        job.report(f"layer {layer}", (i + 1) / max(len(order), 1))
        yield layer, layer_operators(ckpt, lay.layers[layer], hidden)


def norm_gains(ckpt: Checkpoint, lay: Layout) -> list[Array]:
    """Every norm gain vector (for the sorted-gain statistics)."""
    out = [load(ckpt, n).reshape(-1) for names in lay.layers.values() for r, n in names.items()
           if r.endswith("norm")]  # fmt: skip
    if "final_norm" in lay.top:
        out.append(load(ckpt, lay.top["final_norm"]).reshape(-1))
    return out
