"""Hover text for config keys: the key's meaning and its value in context.

The context comes from `HOVER_RULES`, a table of named rules tried in order; the first
rule that answers for the key gives the derived facts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from companion.architecture.archspec import ArchSpec
from companion.architecture.document import ConfigDocument
from companion.architecture.families import FAMILIES
from companion.architecture.keydocs import DEPRECATED, KEY_DOCS
from companion.architecture.params import ParamCount, human
from companion.architecture.tokenizer import sibling_tokenizer_size
from companion.mdtext import code, inline

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


@dataclass
class _Facts:
    """What a hover rule reads: the key, the spec, its counts and the document."""

    key: str
    s: ArchSpec
    p: ParamCount
    doc: ConfigDocument

    @property
    def layers(self) -> int:
        """The layer count (0 when unknown)."""
        return self.s.num_layers or 0


HoverRule = Callable[[_Facts], list[str] | None]
_EXPERT_KEYS = (
    "num_experts_per_tok",
    "experts_per_token",
    "num_local_experts",
    "num_experts",
    "n_routed_experts",
    "moe_topk",
)
_ATTENTION_KIND = {"mha": "multi-head (no sharing)", "mqa": "multi-query", "gqa": "grouped-query"}


def _width(f: _Facts) -> list[str] | None:
    """hidden_size: the derived head width and the model's size."""
    if f.key not in ("hidden_size", "n_embd", "d_model"):
        return None
    s, out = f.s, []
    if s.head_dim_derived and s.head_dim and s.attention != "mla":
        out.append(f"head_dim = hidden_size / num_attention_heads = {s.head_dim} (derived).")
    out.append(f"Model ≈ {human(f.p.total)} parameters ({human(f.p.active)} active).")
    return out


def _heads(f: _Facts) -> list[str] | None:
    """num_attention_heads: head width and query heads per KV head."""
    s = f.s
    heads, kv = s.num_heads, s.num_kv_heads
    if f.key not in ("num_attention_heads", "n_head") or not heads:
        return None
    out = []
    if s.head_dim:
        out.append(f"head_dim {s.head_dim}" + (" (derived)" if s.head_dim_derived else "") + ".")
    if kv and kv != heads:
        out.append(f"{heads // kv if heads % kv == 0 else heads / kv:g} query heads per KV head.")
    return out


def _kv_heads(f: _Facts) -> list[str] | None:
    """num_key_value_heads: the attention kind and the KV cache per token."""
    s = f.s
    heads, kv, hd = s.num_heads, s.num_kv_heads, s.head_dim
    if f.key != "num_key_value_heads" or not heads or not kv:
        return None
    kind = _ATTENTION_KIND.get(s.attention, s.attention)
    out = [f"{kind} attention: {heads} query / {kv} KV heads."]
    if hd and s.attention != "mla":
        out.append(f"KV cache: {2 * kv * hd:,} values per token per layer.")
    return out


def _head_dim(f: _Facts) -> list[str] | None:
    """head_dim: the query width against hidden_size."""
    s = f.s
    hd, heads = s.head_dim, s.num_heads
    if f.key != "head_dim" or not (hd and heads and s.hidden_size):
        return None
    return [f"Query width {heads} × {hd} = {heads * hd:,} vs hidden_size {s.hidden_size:,}."]


def _experts(f: _Facts) -> list[str] | None:
    """Expert counts: the active fraction, the expert size and the MoE layers."""
    s, p = f.s, f.p
    if f.key not in _EXPERT_KEYS or not s.is_moe:
        return None
    frac = s.experts_per_token / s.num_experts
    shared = f" + {s.num_shared_experts} shared" if s.num_shared_experts else ""
    return [
        f"{s.experts_per_token} of {s.num_experts} routed experts active per token "
        f"({frac:.1%}){shared}.",
        f"Each expert: {human(p.per_expert)} parameters; {s.moe_layer_count()} MoE layers.",
    ]


def _expert_width(f: _Facts) -> list[str] | None:
    """moe_intermediate_size (or intermediate_size when it is the expert width)."""
    s = f.s
    if f.key == "moe_intermediate_size" and s.is_moe:
        return [f"Each expert: {human(f.p.per_expert)} parameters."]
    if f.key == "intermediate_size" and s.is_moe and s.moe_intermediate_size == s.intermediate_size:
        return ["Here it is the hidden width of each expert."]
    return None


def _dense_first(f: _Facts) -> list[str] | None:
    """first_k_dense_replace: which layers are dense and which MoE."""
    if f.key != "first_k_dense_replace":
        return None
    k = f.s.first_k_dense
    if not k:
        return ["No dense first layers: every layer is MoE."]
    return [f"Layers 0–{k - 1} dense, {k}–{f.layers - 1} MoE."]


def _layers(f: _Facts) -> list[str] | None:
    """num_hidden_layers: dense/MoE split and uncounted MTP layers."""
    if f.key not in ("num_hidden_layers", "n_layer"):
        return None
    s, layers = f.s, f.layers
    parts = [f"{layers} layers"]
    if s.is_moe:
        moe_layers = s.moe_layer_count()
        parts.append(f"{moe_layers} MoE, {layers - moe_layers} dense")
    if s.mtp_layers:
        parts.append(f"+ {s.mtp_layers} MTP layer(s) not counted in the total")
    return [", ".join(parts) + "."]


def _mtp(f: _Facts) -> list[str] | None:
    """num_nextn_predict_layers: the MTP parameters, reported apart."""
    if f.key != "num_nextn_predict_layers" or not f.p.mtp:
        return None
    return [f"MTP layers hold ≈ {human(f.p.mtp)} parameters, reported separately."]


def _vocab(f: _Facts) -> list[str] | None:
    """vocab_size: the embedding table and the tokenizer beside the config."""
    s = f.s
    if f.key != "vocab_size" or not s.vocab_size or not s.hidden_size:
        return None
    out = [
        f"Embedding table {s.vocab_size:,} × {s.hidden_size:,} = "
        f"{human(f.p.breakdown.input_embedding)} parameters."
    ]
    tok = sibling_tokenizer_size(f.doc.folder)
    if tok is not None:
        out.append(f"tokenizer.json beside it has {tok[1]:,} ids.")
    return out


def _tied(f: _Facts) -> list[str] | None:
    """tie_word_embeddings: what tying saves or untying adds."""
    if f.key != "tie_word_embeddings":
        return None
    b = f.p.breakdown
    if f.s.tie_word_embeddings:
        return [f"Tied: saves {human(b.input_embedding)} parameters."]
    return [f"Untied: the output head adds {human(b.output_head)} parameters."]


def _rotary(f: _Facts) -> list[str] | None:
    """partial_rotary_factor: how many dims per head get RoPE."""
    hd = f.s.head_dim
    if f.key != "partial_rotary_factor" or not hd:
        return None
    return [f"RoPE on {int(hd * f.s.partial_rotary_factor)} of {hd} dims per head."]


def _latent_kv(f: _Facts) -> list[str] | None:
    """kv_lora_rank: the MLA KV cache per token."""
    s = f.s
    if f.key != "kv_lora_rank" or s.kv_lora_rank is None:
        return None
    return [
        f"KV cache: {s.kv_lora_rank + (s.qk_rope_head_dim or 0)} values per token per "
        "layer (latent + rope key)."
    ]


def _layer_types(f: _Facts) -> list[str] | None:
    """layer_types: how many layers of each type."""
    if f.key != "layer_types" or not f.s.layer_types:
        return None
    return [", ".join(f"{v} × {inline(k)}" for k, v in f.s.layer_types.items()) + "."]


def _family(f: _Facts) -> list[str] | None:
    """model_type: the family and the nearest known architecture."""
    if f.key != "model_type":
        return None
    out = [FAMILIES.get(f.s.family, "Unknown family: read generically.") + "."]
    n = f.doc.neighbour
    if n is not None:
        out.append(f"Nearest known: {n.name} (distance {n.distance:.3f}).")
    return out


HOVER_RULES: tuple[HoverRule, ...] = (
    _width,
    _heads,
    _kv_heads,
    _head_dim,
    _experts,
    _expert_width,
    _dense_first,
    _layers,
    _mtp,
    _vocab,
    _tied,
    _rotary,
    _latent_kv,
    _layer_types,
    _family,
)


def _context(key: str, a: ConfigDocument) -> list[str]:
    """Derived facts for a key, from the whole spec: the first rule that answers."""
    if a.spec is None or a.params is None:
        return []
    facts = _Facts(key, a.spec, a.params, a)
    found = (rule(facts) for rule in HOVER_RULES)
    return next((lines for lines in found if lines is not None), [])


def hover_text(key: str, value: Any, parent: str | None, a: ConfigDocument) -> str | None:
    """Markdown for a hover on `key` (nested under `parent`), or None for unknown keys."""
    if parent is not None:
        doc = _ROPE_KEYS.get(key) if parent == "rope_scaling" else None
        if doc is None:
            return None
        return f"**{parent}.{key}**: {doc}\n\nValue: {code(_short(value))}"
    doc = KEY_DOCS.get(key)
    if doc is None:
        if a.spec is not None and key in a.spec.unknown_fields:
            return f"**{inline(key)}**: not understood by companion (not used in the counts)."
        return None
    lines = [f"**{key}**: {doc}", "", f"Value: {code(_short(value))}"]
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
