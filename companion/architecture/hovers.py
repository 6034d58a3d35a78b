"""Hover text for config keys: the key's meaning and its value in context."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from companion.architecture.families import FAMILIES
from companion.architecture.keydocs import DEPRECATED, KEY_DOCS
from companion.architecture.params import human

if TYPE_CHECKING:
    from companion.architecture.analysis import Analysis

_ROPE_KEYS = {
    "factor": "Context extension factor.",
    "rope_type": "RoPE scaling scheme.",
    "type": "RoPE scaling scheme (older name of rope_type).",
    "original_max_position_embeddings": "Context length before extension.",
    "beta_fast": "YaRN: high-frequency boundary.",
    "beta_slow": "YaRN: low-frequency boundary.",
    "low_freq_factor": "Llama 3 scaling: low-frequency factor.",
    "high_freq_factor": "Llama 3 scaling: high-frequency factor.",
    "mscale": "YaRN attention-temperature scale.",
    "mscale_all_dim": "YaRN attention-temperature scale over all dims.",
}


def _context(key: str, a: Analysis) -> list[str]:
    """Derived facts for a key, from the whole spec."""
    s, p = a.spec, a.params
    if s is None or p is None:
        return []
    out: list[str] = []
    hd, heads, kv = s.head_dim, s.num_heads, s.num_kv_heads
    layers = s.num_layers or 0
    moe_layers = s.moe_layer_count()
    if key in ("hidden_size", "n_embd", "d_model"):
        if s.head_dim_derived and hd and s.attention != "mla":
            out.append(f"head_dim = hidden_size / num_attention_heads = {hd} (derived).")
        out.append(f"Model ≈ {human(p.total)} parameters ({human(p.active)} active).")
    elif key in ("num_attention_heads", "n_head") and heads:
        if hd:
            out.append(f"head_dim {hd}" + (" (derived)" if s.head_dim_derived else "") + ".")
        if kv and kv != heads:
            out.append(
                f"{heads // kv if heads % kv == 0 else heads / kv:g} query heads per KV head."
            )
    elif key == "num_key_value_heads" and heads and kv:
        kind = {"mha": "multi-head (no sharing)", "mqa": "multi-query", "gqa": "grouped-query"}
        out.append(
            f"{kind.get(s.attention, s.attention)} attention: {heads} query / {kv} KV heads."
        )
        if hd and s.attention != "mla":
            out.append(f"KV cache: {2 * kv * hd:,} values per token per layer.")
    elif key == "head_dim" and hd and heads and s.hidden_size:
        out.append(f"Query width {heads} × {hd} = {heads * hd:,} vs hidden_size {s.hidden_size:,}.")
    elif (
        key
        in (
            "num_experts_per_tok",
            "experts_per_token",
            "num_local_experts",
            "num_experts",
            "n_routed_experts",
            "moe_topk",
        )
        and s.is_moe
    ):
        frac = s.experts_per_token / s.num_experts
        shared = f" + {s.num_shared_experts} shared" if s.num_shared_experts else ""
        out.append(
            f"{s.experts_per_token} of {s.num_experts} routed experts active per token "
            f"({frac:.1%}){shared}."
        )
        out.append(f"Each expert: {human(p.per_expert)} parameters; {moe_layers} MoE layers.")
    elif key == "moe_intermediate_size" and s.is_moe:
        out.append(f"Each expert: {human(p.per_expert)} parameters.")
    elif key == "intermediate_size" and s.is_moe and s.moe_intermediate_size == s.intermediate_size:
        out.append("Here it is the hidden width of each expert.")
    elif key == "first_k_dense_replace":
        k = s.first_k_dense
        out.append(
            f"Layers 0–{k - 1} dense, {k}–{layers - 1} MoE."
            if k
            else "No dense first layers: every layer is MoE."
        )
    elif key in ("num_hidden_layers", "n_layer"):
        parts = [f"{layers} layers"]
        if s.is_moe:
            parts.append(f"{moe_layers} MoE, {layers - moe_layers} dense")
        if s.mtp_layers:
            parts.append(f"+ {s.mtp_layers} MTP layer(s) not counted in the total")
        out.append(", ".join(parts) + ".")
    elif key == "num_nextn_predict_layers" and p.mtp:
        out.append(f"MTP layers hold ≈ {human(p.mtp)} parameters, reported separately.")
    elif key == "vocab_size" and s.vocab_size and s.hidden_size:
        out.append(
            f"Embedding table {s.vocab_size:,} × {s.hidden_size:,} = "
            f"{human(p.breakdown.input_embedding)} parameters."
        )
        from companion.architecture.analysis import sibling_tokenizer_size

        tok = sibling_tokenizer_size(a.folder)
        if tok is not None:
            out.append(f"tokenizer.json beside it has {tok[1]:,} ids.")
    elif key == "tie_word_embeddings":
        saved = p.breakdown.input_embedding
        out.append(
            f"Tied: saves {human(saved)} parameters."
            if s.tie_word_embeddings
            else f"Untied: the output head adds {human(p.breakdown.output_head)} parameters."
        )
    elif key == "partial_rotary_factor" and hd:
        out.append(f"RoPE on {int(hd * s.partial_rotary_factor)} of {hd} dims per head.")
    elif key == "kv_lora_rank" and s.kv_lora_rank is not None:
        out.append(
            f"KV cache: {s.kv_lora_rank + (s.qk_rope_head_dim or 0)} values per token per "
            "layer (latent + rope key)."
        )
    elif key == "layer_types" and s.layer_types:
        out.append(", ".join(f"{v} × {k}" for k, v in s.layer_types.items()) + ".")
    elif key == "model_type":
        out.append(FAMILIES.get(s.family, "Unknown family: read generically.") + ".")
        if a.neighbour is not None:
            out.append(f"Nearest known: {a.neighbour.name} (distance {a.neighbour.distance:.3f}).")
    return out


def hover_text(key: str, value: Any, parent: str | None, a: Analysis) -> str | None:
    """Markdown for a hover on `key` (nested under `parent`), or None for unknown keys."""
    if parent is not None:
        doc = _ROPE_KEYS.get(key) if parent == "rope_scaling" else None
        if doc is None:
            return None
        return f"**{parent}.{key}**: {doc}\n\nValue: `{_short(value)}`"
    doc = KEY_DOCS.get(key)
    if doc is None:
        if a.spec is not None and key in a.spec.unknown_fields:
            return f"**{key}**: not understood by companion (not used in the counts)."
        return None
    lines = [f"**{key}**: {doc}", "", f"Value: `{_short(value)}`"]
    if key in DEPRECATED:
        lines.append(f"\nDeprecated: {DEPRECATED[key][1]}")
    ctx = _context(key, a)
    if ctx:
        lines += ["", *[f"- {c}" for c in ctx]]
    return "\n".join(lines)


def _short(value: Any) -> str:
    """A value rendered compactly for a hover."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
