"""Derivatives for fingerprint tests, demo and benchmarks (on top of `audit.synth`).

Each one keeps the ground truth known: a hidden-dimension permutation applied everywhere,
attention rotations, coarse quantization, an extended vocabulary and FFN-unit pruning.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from companion.audit.synth import Spec, Weights

Array = np.ndarray[Any, Any]
_HIDDEN_IN = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")


def hidden_permuted(w: Weights, spec: Spec, seed: int = 5) -> Weights:
    """The residual stream permuted consistently: embeddings, norms, inputs and outputs."""
    perm = np.random.default_rng(seed).permutation(spec.hidden)
    out: Weights = {}
    for name, t in w.items():
        if t.ndim == 1:
            out[name] = t[perm]
        elif name.endswith(("embed_tokens.weight", "lm_head.weight")) or any(
            p in name for p in _HIDDEN_IN
        ):
            out[name] = t[:, perm]
        else:  # o_proj and down_proj write into the residual stream
            out[name] = t[perm, :]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def rotated(w: Weights, spec: Spec, seed: int = 6) -> Weights:
    """Per-head invertible maps: W_Q^h <- A W_Q^h, W_K^h <- A^-T W_K^h; likewise V and O."""
    rng = np.random.default_rng(seed)
    out = dict(w)
    d = spec.head_dim
    for layer in range(spec.layers):
        p = f"model.layers.{layer}.self_attn."
        q, k, v = (w[p + f"{x}_proj.weight"].copy() for x in "qkv")
        o = w[p + "o_proj.weight"].copy()
        for h in range(spec.heads):
            s = slice(h * d, (h + 1) * d)
            a = np.eye(d) + 0.3 * rng.standard_normal((d, d))
            b = np.eye(d) + 0.3 * rng.standard_normal((d, d))
            q[s], k[s] = a @ q[s], np.linalg.inv(a).T @ k[s]
            v[s], o[:, s] = b @ v[s], o[:, s] @ np.linalg.inv(b)
        for x, t in (("q", q), ("k", k), ("v", v), ("o", o)):
            out[p + f"{x}_proj.weight"] = t.astype(np.float32)
    return out


def quantized(w: Weights, levels: int = 15) -> Weights:
    """Every tensor rounded to a coarse symmetric grid (`levels` steps over +-3 std)."""
    out: Weights = {}
    for name, t in w.items():
        centre = float(np.median(t)) if t.ndim == 1 else 0.0
        step = 6.0 * float(t.std() or 1.0) / levels
        out[name] = (centre + np.round((t - centre) / step) * step).astype(np.float32)
    return out


def vocab_extended(w: Weights, spec: Spec, extra: int = 64, seed: int = 7) -> tuple[Weights, Spec]:
    """New token rows appended to the embedding and the output head."""
    rng = np.random.default_rng(seed)
    out = dict(w)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        t = w[name]
        rows = (t.std() * rng.standard_normal((extra, t.shape[1]))).astype(np.float32)
        out[name] = np.concatenate([t, rows])
    return out, Spec(**{**asdict(spec), "vocab": spec.vocab + extra})


def ffn_pruned(w: Weights, spec: Spec, keep: float = 0.75, seed: int = 8) -> tuple[Weights, Spec]:
    """Width pruning: the same random subset of FFN units kept in every layer."""
    n = int(spec.intermediate * keep)
    units = np.sort(np.random.default_rng(seed).choice(spec.intermediate, n, replace=False))
    out = dict(w)
    for layer in range(spec.layers):
        p = f"model.layers.{layer}.mlp."
        out[p + "gate_proj.weight"] = np.ascontiguousarray(w[p + "gate_proj.weight"][units])
        out[p + "up_proj.weight"] = np.ascontiguousarray(w[p + "up_proj.weight"][units])
        out[p + "down_proj.weight"] = np.ascontiguousarray(w[p + "down_proj.weight"][:, units])
    return out, Spec(**{**asdict(spec), "intermediate": n})
