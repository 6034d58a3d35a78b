"""Shape-changing synthetic derivatives: vocabulary, width pruning, depth up-scaling, MoE.

Companions of synth.py for the tests and bench/judgement.py. Each keeps the ground truth
known; tokenizers are WordLevel tokenizer.json files with synthetic token strings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from companion.audit.synth import Spec, Weights, save

EMB, HEAD = "model.embed_tokens.weight", "lm_head.weight"


def tokens(vocab: int, prefix: str = "tok") -> dict[str, int]:
    """Synthetic token strings with their IDs."""
    return {f"{prefix}{i}": i for i in range(vocab)}


def write_tokenizer(folder: Path, vocab: dict[str, int]) -> Path:
    """A minimal Hugging Face tokenizer.json (WordLevel) beside a checkpoint."""
    data = {"version": "1.0", "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "tok0"}}
    path = folder / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def save_with(folder: Path, w: Weights, spec: Spec, config: dict[str, Any] | None = None) -> Path:
    """save() and then overwrite config.json keys (shapes the Spec cannot describe)."""
    save(folder, w, spec)
    if config:
        cfg = {**spec.config(), **config}
        (folder / "config.json").write_text(json.dumps(cfg, indent=1), encoding="utf-8")
    return folder


def noise_added(w: Weights, seed: int = 11, scale: float = 0.3) -> Weights:
    """A plus iid Gaussian noise (relative to each tensor's std): a full-rank, isotropic delta."""
    rng = np.random.default_rng(seed)
    return {
        n: (t + scale * (float(t.std()) or 1.0) * rng.standard_normal(t.shape)).astype(np.float32)
        for n, t in w.items()
    }


def depth_upscaled(w: Weights, spec: Spec, order: list[int]) -> tuple[Weights, Spec]:
    """SOLAR-style: B's layer k is a copy of A's layer order[k] (repeats allowed)."""
    out = {n: t for n, t in w.items() if not n.startswith("model.layers.")}
    for k, src in enumerate(order):
        prefix = f"model.layers.{src}."
        for n, t in w.items():
            if n.startswith(prefix):
                out[f"model.layers.{k}." + n[len(prefix) :]] = t.copy()
    return out, replace(spec, layers=len(order))


def vocab_extended(w: Weights, spec: Spec, new: int, seed: int = 12) -> tuple[Weights, Spec]:
    """New token rows appended to the embedding and lm_head (A's rows kept at their IDs)."""
    rng = np.random.default_rng(seed)
    out = dict(w)
    for n in (EMB, HEAD):
        extra = spec.init_std * rng.standard_normal((new, spec.hidden))
        out[n] = np.concatenate([w[n], extra.astype(np.float32)])
    return out, replace(spec, vocab=spec.vocab + new)


def vocab_reordered(w: Weights, spec: Spec, seed: int = 13) -> tuple[Weights, dict[str, int]]:
    """Rows permuted, with B's tokenizer giving every token its new ID (same function)."""
    perm = np.random.default_rng(seed).permutation(spec.vocab)  # new row k holds old row perm[k]
    out = dict(w)
    for n in (EMB, HEAD):
        out[n] = np.ascontiguousarray(w[n][perm])
    return out, {f"tok{int(old)}": k for k, old in enumerate(perm)}


def vocab_shifted(w: Weights, spec: Spec, shift: int, seed: int = 14) -> tuple[Weights, Spec]:
    """`shift` new tokens inserted before A's (every A ID moves by +shift), no tokenizer."""
    rng = np.random.default_rng(seed)
    out = dict(w)
    for n in (EMB, HEAD):
        extra = (spec.init_std * rng.standard_normal((shift, spec.hidden))).astype(np.float32)
        out[n] = np.concatenate([extra, w[n]])
    return out, replace(spec, vocab=spec.vocab + shift)


def width_pruned(
    w: Weights, spec: Spec, units: int, hidden: int | None = None, seed: int = 15
) -> tuple[Weights, Spec, dict[str, Any]]:
    """Minitron-style: keep `units` FFN units (and `hidden` residual dims) of A, in A's order.

    Returns the weights, the spec (intermediate changed) and config.json overrides.
    """
    rng = np.random.default_rng(seed)
    keep_u = np.sort(rng.choice(spec.intermediate, units, replace=False))
    keep_h = np.sort(rng.choice(spec.hidden, hidden, replace=False)) if hidden else None
    out: Weights = {}
    for n, t in w.items():
        x = t
        if n.endswith(("gate_proj.weight", "up_proj.weight")):
            x = x[keep_u]
        elif n.endswith("down_proj.weight"):
            x = x[:, keep_u]
        if keep_h is not None:
            x = _slice_hidden(n, x, keep_h)
        out[n] = np.ascontiguousarray(x)
    new = replace(spec, intermediate=units)
    cfg = {"hidden_size": hidden} if hidden else {}
    return out, new, cfg


def _slice_hidden(name: str, x: Any, keep: Any) -> Any:
    """Keep residual dims `keep` of one tensor (norms, input columns, output rows)."""
    if x.ndim == 1:
        return x[keep]
    if name.endswith(("o_proj.weight", "down_proj.weight")):
        return x[keep]
    return x[:, keep]


def upcycled(
    w: Weights, spec: Spec, experts: int, noise: float = 0.2, seed: int = 16
) -> tuple[Weights, dict[str, Any]]:
    """Sparse upcycling: every layer's dense FFN copied into `experts` experts (+ small noise)."""
    rng = np.random.default_rng(seed)
    out: Weights = {}
    for n, t in w.items():
        if ".mlp." not in n:
            out[n] = t
            continue
        prefix, proj = n.split(".mlp.")
        for e in range(experts):
            d = noise * float(t.std()) * rng.standard_normal(t.shape)
            out[f"{prefix}.mlp.experts.{e}.{proj}"] = (t + d).astype(np.float32)
        if proj.startswith("gate_proj"):
            router = spec.init_std * rng.standard_normal((experts, spec.hidden))
            out[f"{prefix}.mlp.gate.weight"] = router.astype(np.float32)
    cfg = {"model_type": "mixtral", "num_local_experts": experts, "num_experts_per_tok": 2}
    return out, cfg


def spec_dict(spec: Spec) -> dict[str, Any]:
    """The spec as a dict (for config overrides)."""
    return asdict(spec)
