"""Shape-changing synthetic derivatives: vocabulary, width pruning, depth up-scaling, MoE.

Companions of synth.py for the tests and bench/judgement.py. Each keeps the ground truth
known; tokenizers are WordLevel tokenizer.json files with synthetic token strings.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from companion.audit.synth import Spec, Weights, base, finetune, hidden_permuted, save

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


def layers_reordered(w: Weights, spec: Spec, order: list[int]) -> tuple[Weights, Spec]:
    """B's layer k is A's layer order[k]: a permutation of the layers, or (shorter) pruned and
    reordered. An evasion: compared layer i against layer i, B looks unrelated."""
    if len(set(order)) != len(order):
        raise ValueError("a reordering uses each layer once (depth_upscaled repeats them)")
    return depth_upscaled(w, spec, order)


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


def heads_kept(spec: Spec, heads: int, seed: int = 17) -> list[Any]:
    """The A heads heads_pruned keeps in each layer (sorted)."""
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(spec.heads, heads, replace=False)) for _ in range(spec.layers)]


def heads_pruned(
    w: Weights, spec: Spec, heads: int, seed: int = 17
) -> tuple[Weights, dict[str, Any]]:
    """Keep `heads` attention heads of A in every layer (q/k/v rows, o columns), A's order."""
    d = spec.head_dim
    out = dict(w)
    for layer, keep in enumerate(heads_kept(spec, heads, seed)):
        rows = (keep[:, None] * d + np.arange(d)[None, :]).reshape(-1)
        p = f"model.layers.{layer}.self_attn."
        for proj in ("q_proj", "k_proj", "v_proj"):
            out[p + proj + ".weight"] = np.ascontiguousarray(w[p + proj + ".weight"][rows])
        out[p + "o_proj.weight"] = np.ascontiguousarray(w[p + "o_proj.weight"][:, rows])
    return out, {"num_attention_heads": heads, "num_key_value_heads": heads}


def _kv_rows(spec: Spec, heads: Any) -> Any:
    """Row indices of the given K/V heads (head_dim rows each)."""
    d = spec.head_dim
    return (np.asarray(heads)[:, None] * d + np.arange(d)[None, :]).reshape(-1)


def kv_pooled(w: Weights, spec: Spec, kv: int) -> tuple[Weights, dict[str, Any]]:
    """MHA -> GQA as in the GQA paper's uptraining recipe: each group's K/V heads mean-pooled.

    B's K/V head g is the mean of A's heads [g*r, (g+1)*r) (r = heads // kv); Q/O unchanged.
    """
    r, d = spec.heads // kv, spec.head_dim
    out = dict(w)
    for layer in range(spec.layers):
        p = f"model.layers.{layer}.self_attn."
        for proj in ("k_proj", "v_proj"):
            x = w[p + proj + ".weight"].reshape(kv, r, d, -1)  # any residual width
            out[p + proj + ".weight"] = np.ascontiguousarray(x.mean(axis=1).reshape(kv * d, -1))
    return out, {"num_key_value_heads": kv}


def kv_repeated(w: Weights, spec: Spec) -> tuple[Weights, dict[str, Any]]:
    """GQA -> MHA as HF's repeat_kv does: each K/V head copied to every query head it serves."""
    out = dict(w)
    for layer in range(spec.layers):
        p = f"model.layers.{layer}.self_attn."
        for proj in ("k_proj", "v_proj"):
            x = w[p + proj + ".weight"]
            kv = x.shape[0] // spec.head_dim
            heads = x.reshape(kv, spec.head_dim, -1).repeat(spec.heads // kv, axis=0)
            out[p + proj + ".weight"] = np.ascontiguousarray(heads.reshape(-1, x.shape[1]))
    return out, {"num_key_value_heads": spec.heads}


def kv_pruned(
    w: Weights, spec: Spec, kv: int, seed: int = 19
) -> tuple[Weights, dict[str, Any], list[list[int]]]:
    """K/V heads removed: `kv` of A's K/V heads kept (A's order) per layer; Q/O unchanged.

    Returns the weights, config.json overrides and each layer's kept A heads.
    """
    rng = np.random.default_rng(seed)
    out, kept = dict(w), []
    for layer in range(spec.layers):
        keep = np.sort(rng.choice(spec.heads, kv, replace=False))
        kept.append([int(h) for h in keep])
        p = f"model.layers.{layer}.self_attn."
        for proj in ("k_proj", "v_proj"):
            out[p + proj + ".weight"] = np.ascontiguousarray(
                w[p + proj + ".weight"][_kv_rows(spec, keep)]
            )
    return out, {"num_key_value_heads": kv}, kept


def head_dim_pruned(
    w: Weights, spec: Spec, head_dim: int, seed: int = 20
) -> tuple[Weights, dict[str, Any], list[list[int]]]:
    """`head_dim` channels kept within every head (q/k/v rows, o columns), A's order.

    Returns the weights, config.json overrides and each layer's kept channels (every head).
    """
    rng = np.random.default_rng(seed)
    d = spec.head_dim
    out, kept = dict(w), []
    for layer in range(spec.layers):
        keep = np.sort(rng.choice(d, head_dim, replace=False))
        kept.append([int(c) for c in keep])
        rows = (np.arange(spec.heads)[:, None] * d + keep[None, :]).reshape(-1)
        p = f"model.layers.{layer}.self_attn."
        for proj in ("q_proj", "k_proj", "v_proj"):
            out[p + proj + ".weight"] = np.ascontiguousarray(w[p + proj + ".weight"][rows])
        out[p + "o_proj.weight"] = np.ascontiguousarray(w[p + "o_proj.weight"][:, rows])
    return out, {"head_dim": head_dim}, kept


def upcycled_split(
    w: Weights, spec: Spec, experts: int, seed: int = 18
) -> tuple[Weights, dict[str, Any]]:
    """Fine-grained upcycling: A's FFN units shuffled and split among `experts` experts."""
    rng = np.random.default_rng(seed)
    out: Weights = {n: t for n, t in w.items() if ".mlp." not in n}
    size = spec.intermediate // experts
    for layer in range(spec.layers):
        p = f"model.layers.{layer}.mlp."
        order = rng.permutation(spec.intermediate)
        for e in range(experts):
            units = order[e * size : (e + 1) * size]
            for proj in ("gate_proj", "up_proj"):
                out[f"{p}experts.{e}.{proj}.weight"] = np.ascontiguousarray(
                    w[p + proj + ".weight"][units]
                )
            out[f"{p}experts.{e}.down_proj.weight"] = np.ascontiguousarray(
                w[p + "down_proj.weight"][:, units]
            )
        out[p + "gate.weight"] = (
            spec.init_std * rng.standard_normal((experts, spec.hidden))
        ).astype(np.float32)
    cfg = {"model_type": "qwen2_moe", "num_experts": experts, "moe_intermediate_size": size}
    return out, cfg


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


def _derived(root: Path, w: Weights, spec: Spec) -> dict[str, Path]:
    """The shape-changing derivatives of `w` (a small fine-tune under each), written out."""
    ft = finetune(w, seed=1, update=0.1, noise=0.1)
    out: dict[str, Path] = {}
    x, s = vocab_extended(ft, spec, 64)
    out["vocab extended"] = save(root / "vocab_extended", x, s)
    write_tokenizer(out["vocab extended"], {**tokens(spec.vocab), **_new_tokens(spec.vocab, 64)})
    x, order = vocab_reordered(ft, spec)
    out["vocab reordered"] = save(root / "vocab_reordered", x, spec)
    write_tokenizer(out["vocab reordered"], order)
    x, s = vocab_shifted(ft, spec, 3)
    out["vocab shifted (no tok)"] = save(root / "vocab_shifted", x, s)
    x, s, cfg = width_pruned(ft, spec, spec.intermediate * 3 // 4)
    out["ffn width-pruned"] = save_with(root / "ffn_pruned", x, s, cfg)
    x, s, cfg = width_pruned(ft, spec, spec.intermediate * 3 // 4, hidden=spec.hidden * 3 // 4)
    out["hidden+ffn pruned"] = save_with(root / "hidden_pruned", x, s, cfg)
    x, s, cfg = width_pruned(hidden_permuted(ft), spec, spec.intermediate * 3 // 4)
    out["ffn pruned + hidden perm"] = save_with(root / "ffn_pruned_perm", x, s, cfg)
    x, cfg = heads_pruned(ft, spec, spec.heads - 1)
    out["heads pruned"] = save_with(root / "heads_pruned", x, spec, cfg)
    x, cfg = kv_pooled(ft, spec, 2)
    out["kv pooled (MHA->GQA)"] = save_with(root / "kv_pooled", x, spec, cfg)
    x, cfg, _ = kv_pruned(ft, spec, 2)
    out["kv heads pruned"] = save_with(root / "kv_pruned", x, spec, cfg)
    x, cfg, _ = head_dim_pruned(ft, spec, spec.head_dim * 3 // 4)
    out["head_dim pruned"] = save_with(root / "head_dim_pruned", x, spec, cfg)
    x, cfg = upcycled(w, spec, 4)
    out["moe upcycled"] = save_with(root / "moe_upcycled", x, spec, cfg)
    x, cfg = upcycled_split(ft, spec, 4)
    out["moe fine-grained"] = save_with(root / "moe_split", x, spec, cfg)
    layers = list(range(spec.layers))
    x, s = depth_upscaled(ft, spec, layers[:-1] + layers[1:])
    out["depth up-scaled"] = save(root / "depth_upscaled", x, s)
    out["noise added"] = save(root / "noise_added", noise_added(w), spec)
    x, s = layers_reordered(ft, spec, layers[::-1])
    out["layers reordered"] = save(root / "layers_reordered", x, s)
    x, s = layers_reordered(ft, spec, [layers[-1], *layers[:-2]])  # one dropped, one moved
    out["pruned + reordered"] = save(root / "pruned_reordered", x, s)
    x, order = vocab_reordered(ft, spec)
    x, s = vocab_extended(x, spec, 16)
    out["vocab reordered + extended"] = save(root / "vocab_reordered_ext", x, s)
    write_tokenizer(out["vocab reordered + extended"], {**order, **_new_tokens(spec.vocab, 16)})
    return out


def _new_tokens(start: int, count: int) -> dict[str, int]:
    """Token strings added by an extended vocabulary."""
    return {f"new{j}": start + j for j in range(count)}


def _independent(root: Path, spec: Spec, seed: int) -> dict[str, Path]:
    """Independent models (another seed) with the same changed shapes: none is derived."""
    w = base(spec, seed)
    out: dict[str, Path] = {}
    x, s = vocab_extended(w, spec, 64)
    out["indep. vocab extended"] = save(root / "ind_vocab", x, s)
    write_tokenizer(
        out["indep. vocab extended"], {**tokens(spec.vocab), **_new_tokens(spec.vocab, 64)}
    )
    x, s = vocab_shifted(w, spec, 3)
    out["indep. vocab shifted"] = save(root / "ind_shifted", x, s)
    x, s, cfg = width_pruned(w, spec, spec.intermediate * 3 // 4, hidden=spec.hidden * 3 // 4)
    out["indep. hidden+ffn pruned"] = save_with(root / "ind_pruned", x, s, cfg)
    x, cfg = kv_pooled(w, spec, 2)
    out["indep. kv pooled"] = save_with(root / "ind_kv_pooled", x, spec, cfg)
    x, cfg, _ = head_dim_pruned(w, spec, spec.head_dim * 3 // 4)
    out["indep. head_dim pruned"] = save_with(root / "ind_head_dim", x, spec, cfg)
    x, cfg = upcycled(w, spec, 4)
    out["indep. moe"] = save_with(root / "ind_moe", x, spec, cfg)
    x, cfg = upcycled_split(w, spec, 4)
    out["indep. moe fine-grained"] = save_with(root / "ind_moe_split", x, spec, cfg)
    x, s = layers_reordered(w, spec, list(range(spec.layers))[::-1])
    out["indep. layers reordered"] = save(root / "ind_layers", x, s)
    x, order = vocab_reordered(w, spec)
    out["indep. vocab reordered"] = save(root / "ind_vocab_reordered", x, spec)
    write_tokenizer(out["indep. vocab reordered"], order)
    return out


def zoo(
    root: Path, a: Path, w: Weights, spec: Spec, seed: int = 200
) -> list[tuple[str, Path, bool]]:
    """(name, B, truly derived) for every shape-changing pair against A (written at `a`).

    Writes A's tokenizer beside it, so vocabulary pairs can be aligned by token string.
    """
    write_tokenizer(a, tokens(spec.vocab))
    pairs = [(n, p, True) for n, p in _derived(root, w, spec).items()]
    return pairs + [(n, p, False) for n, p in _independent(root, spec, seed).items()]
