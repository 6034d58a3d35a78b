"""Synthetic checkpoint families (Llama-style naming) for the demo, tests and benchmarks.

Every derivative keeps the ground truth known: a fine-tune (low-rank plus noise updates), a
function-preserving permutation of MLP units and attention heads, a depth-pruned copy, a
bf16 cast, a function-preserving rescale of norm gains, per-head invertible maps inside
attention (rotated), and independent models whose norm gains sit near one (the cosine trap).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from companion.audit.safetensors import write_safetensors

Weights = dict[str, np.ndarray[Any, Any]]


@dataclass(frozen=True)
class Spec:
    """Shape of a small decoder-only transformer."""

    vocab: int = 256
    hidden: int = 64
    layers: int = 4
    heads: int = 4
    intermediate: int = 128
    init_std: float = 0.02
    gain_std: float = 0.02

    @property
    def head_dim(self) -> int:
        """Per-head width."""
        return self.hidden // self.heads

    def config(self) -> dict[str, Any]:
        """A Hugging Face style config.json for this spec."""
        return {
            "model_type": "llama",
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.heads,
            "intermediate_size": self.intermediate,
            "companion_synth": asdict(self),
        }


def layer_shapes(spec: Spec) -> list[tuple[str, tuple[int, ...]]]:
    """Per-layer tensor suffixes and shapes."""
    h, i = spec.hidden, spec.intermediate
    return [
        ("input_layernorm.weight", (h,)),
        ("self_attn.q_proj.weight", (h, h)),
        ("self_attn.k_proj.weight", (h, h)),
        ("self_attn.v_proj.weight", (h, h)),
        ("self_attn.o_proj.weight", (h, h)),
        ("post_attention_layernorm.weight", (h,)),
        ("mlp.gate_proj.weight", (i, h)),
        ("mlp.up_proj.weight", (i, h)),
        ("mlp.down_proj.weight", (h, i)),
    ]


def tensor_shapes(spec: Spec) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor name and shape, in file order."""
    out: list[tuple[str, tuple[int, ...]]] = [
        ("model.embed_tokens.weight", (spec.vocab, spec.hidden))
    ]
    for layer in range(spec.layers):
        out += [(f"model.layers.{layer}.{s}", shape) for s, shape in layer_shapes(spec)]
    out += [("model.norm.weight", (spec.hidden,)), ("lm_head.weight", (spec.vocab, spec.hidden))]
    return out


def init_tensor(name: str, shape: tuple[int, ...], spec: Spec, rng: np.random.Generator) -> Any:
    """One freshly initialised tensor: gains N(1, gain_std), matrices N(0, init_std)."""
    if len(shape) == 1:
        return (1.0 + spec.gain_std * rng.standard_normal(shape)).astype(np.float32)
    return (spec.init_std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def base(spec: Spec, seed: int = 0) -> Weights:
    """A base model drawn from `seed` (a different seed gives an independent model)."""
    rng = np.random.default_rng(seed)
    return {name: init_tensor(name, shape, spec, rng) for name, shape in tensor_shapes(spec)}


def finetune(
    w: Weights, seed: int = 1, rank: int = 4, update: float = 0.3, noise: float = 0.2
) -> Weights:
    """Base plus a structured low-rank update and dense noise (relative to each tensor's std)."""
    rng = np.random.default_rng(seed)
    out: Weights = {}
    for name, t in w.items():
        std = float(t.std()) or 1.0
        if t.ndim == 2:
            u = rng.standard_normal((t.shape[0], rank)) / np.sqrt(rank)
            v = rng.standard_normal((rank, t.shape[1]))
            delta = update * std * (u @ v) + noise * std * rng.standard_normal(t.shape)
        else:
            delta = noise * std * rng.standard_normal(t.shape)
        out[name] = (t + delta).astype(np.float32)
    return out


def permuted(w: Weights, spec: Spec, seed: int = 2) -> Weights:
    """A functionally identical copy: MLP units and attention heads permuted in every layer."""
    rng = np.random.default_rng(seed)
    out = dict(w)
    d = spec.head_dim
    for layer in range(spec.layers):
        p = f"model.layers.{layer}."
        units = rng.permutation(spec.intermediate)
        out[p + "mlp.gate_proj.weight"] = w[p + "mlp.gate_proj.weight"][units]
        out[p + "mlp.up_proj.weight"] = w[p + "mlp.up_proj.weight"][units]
        out[p + "mlp.down_proj.weight"] = w[p + "mlp.down_proj.weight"][:, units]
        heads = rng.permutation(spec.heads)
        rows = (heads[:, None] * d + np.arange(d)[None, :]).reshape(-1)
        for proj in ("q_proj", "k_proj", "v_proj"):
            out[p + f"self_attn.{proj}.weight"] = w[p + f"self_attn.{proj}.weight"][rows]
        out[p + "self_attn.o_proj.weight"] = w[p + "self_attn.o_proj.weight"][:, rows]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def depth_pruned(w: Weights, spec: Spec, drop: tuple[int, ...]) -> tuple[Weights, Spec]:
    """Remove the given layers and renumber the rest (a depth-pruned derivative)."""
    keep = [layer for layer in range(spec.layers) if layer not in drop]
    out: Weights = {}
    for name, t in w.items():
        parts = name.split(".")
        if parts[:2] == ["model", "layers"]:
            old = int(parts[2])
            if old in drop:
                continue
            parts[2] = str(keep.index(old))
        out[".".join(parts)] = t
    new_spec = Spec(**{**asdict(spec), "layers": len(keep)})
    return out, new_spec


def cast(w: Weights, dtype: Any = None) -> Weights:
    """The same weights stored in another dtype (bf16 by default)."""
    if dtype is None:
        import ml_dtypes  # lazy: only writers need it, and it costs ~0.5 s to import

        dtype = ml_dtypes.bfloat16
    return {k: v.astype(dtype) for k, v in w.items()}


def rescaled(w: Weights, spec: Spec, seed: int = 3, spread: float = 1.5) -> Weights:
    """Function-preserving rescale: gain *= c per channel, next linear's input columns /= c."""
    rng = np.random.default_rng(seed)
    out = dict(w)
    for layer in range(spec.layers):
        p = f"model.layers.{layer}."
        for norm, projs in (
            ("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
            ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj")),
        ):
            c = np.exp(rng.uniform(-spread, spread, spec.hidden)).astype(np.float32)
            out[p + norm + ".weight"] = w[p + norm + ".weight"] * c
            for proj in projs:
                out[p + proj + ".weight"] = w[p + proj + ".weight"] / c[None, :]
    return out


def hidden_permuted(w: Weights, seed: int = 5) -> Weights:
    """Function-preserving residual-stream permutation: one hidden order in every tensor.

    Embedding and lm_head columns, every norm gain, q/k/v/up/gate input columns and
    o/down output rows all move together, so the network computes the same function.
    """
    hidden = w["model.norm.weight"].shape[0]
    p = np.random.default_rng(seed).permutation(hidden)
    out: Weights = {}
    for name, t in w.items():
        if t.ndim == 1 or name.endswith(("o_proj.weight", "down_proj.weight")):
            out[name] = np.ascontiguousarray(t[p])
        else:
            out[name] = np.ascontiguousarray(t[:, p])
    return out


def _well_conditioned(d: int, rng: np.random.Generator, spread: float) -> Any:
    """A random invertible d x d map Q1·diag(exp(u))·Q2, u ~ U(-spread, spread)."""
    q1, _ = np.linalg.qr(rng.standard_normal((d, d)))
    q2, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return q1 @ np.diag(np.exp(rng.uniform(-spread, spread, d))) @ q2


def rotated(
    w: Weights,
    spec: Spec,
    seed: int = 15,
    which: tuple[str, ...] = ("qk", "vo"),
    spread: float = 0.5,
) -> Weights:
    """Function-preserving per-head maps inside attention (an exact continuous symmetry).

    Per layer and K/V head g (one map per group under GQA, shared by its Q/O heads):
    "qk": Q_h <- A·Q_h and K_g <- A^-T·K_g, so Q_hᵀK_g is unchanged; "vo": V_g <- B·V_g and
    O's head columns O_h <- O_h·B^-1, so O_h·V_g is unchanged. A, B are well conditioned,
    not only orthogonal. K/V heads are counted from k_proj's rows (head_dim from the spec).
    """
    rng = np.random.default_rng(seed)
    d = spec.head_dim
    out = dict(w)
    for layer in range(spec.layers):
        p = f"model.layers.{layer}.self_attn."
        q, k, v, o = (w[p + f"{r}_proj.weight"].astype(np.float64) for r in "qkvo")
        kv, heads = k.shape[0] // d, q.shape[0] // d
        per = heads // kv
        for g in range(kv):
            gs, hs = slice(g * d, (g + 1) * d), slice(g * per * d, (g + 1) * per * d)
            if "qk" in which:
                a = _well_conditioned(d, rng, spread)
                k[gs] = np.linalg.inv(a).T @ k[gs]
                q[hs] = np.concatenate([a @ q[h : h + d] for h in range(hs.start, hs.stop, d)])
            if "vo" in which:
                b = _well_conditioned(d, rng, spread)
                v[gs], b_inv = b @ v[gs], np.linalg.inv(b)
                o[:, hs] = np.concatenate(
                    [o[:, h : h + d] @ b_inv for h in range(hs.start, hs.stop, d)], axis=1
                )
        for r, t in zip("qkvo", (q, k, v, o), strict=True):
            out[p + f"{r}_proj.weight"] = np.ascontiguousarray(t.astype(np.float32))
    return out


def lora_merged(w: Weights, seed: int = 6, rank: int = 2, scale: float = 0.3) -> Weights:
    """A + B·A' on the attention and MLP projections: a merged low-rank adapter."""
    rng = np.random.default_rng(seed)
    out = dict(w)
    for name, t in w.items():
        if t.ndim == 2 and "layers." in name:
            u = rng.standard_normal((t.shape[0], rank))
            v = rng.standard_normal((rank, t.shape[1]))
            delta = scale * float(t.std()) * (u @ v) / np.sqrt(rank)
            out[name] = (t + delta).astype(np.float32)
    return out


def save(folder: Path, w: Weights, spec: Spec, shards: int = 1) -> Path:
    """Write config.json plus one model.safetensors or `shards` shards with an index."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(spec.config(), indent=1), encoding="utf-8")
    names = list(w)
    if shards <= 1:
        write_safetensors(folder / "model.safetensors", w, {"format": "pt"})
        return folder
    weight_map: dict[str, str] = {}
    for k, chunk in enumerate(_split(names, shards)):
        shard = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(folder / shard, {n: w[n] for n in chunk}, {"format": "pt"})
        weight_map.update(dict.fromkeys(chunk, shard))
    index = {
        "metadata": {"total_size": sum(t.nbytes for t in w.values())},
        "weight_map": weight_map,
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1), "utf-8")
    return folder


def _split(names: list[str], parts: int) -> Iterator[list[str]]:
    """Split names into `parts` consecutive, nearly equal groups."""
    step = -(-len(names) // parts)
    for k in range(parts):
        if chunk := names[k * step : (k + 1) * step]:
            yield chunk


def family(folder: Path, spec: Spec | None = None) -> dict[str, Path]:
    """Write a small family (base, fine-tune, independent) under `folder`; return their paths."""
    spec = spec or Spec()
    w = base(spec, seed=0)
    return {
        "base": save(folder / "base", w, spec),
        "finetune": save(folder / "finetune", finetune(w, seed=1), spec),
        "independent": save(folder / "independent", base(spec, seed=100), spec),
    }
