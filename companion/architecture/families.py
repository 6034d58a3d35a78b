"""Per-family readers: which config keys each model_type uses and what its blocks look like."""

from __future__ import annotations

from collections import Counter

from companion.architecture.archspec import ArchSpec
from companion.architecture.reader import Reader

FAMILIES: dict[str, str] = {
    "llama": "Llama (GQA, SwiGLU, RMSNorm, RoPE)",
    "mistral": "Mistral (Llama-like with sliding-window attention)",
    "mixtral": "Mixtral (Mistral with 8 routed experts per layer)",
    "qwen2": "Qwen2 / Qwen2.5 (Llama-like with q/k/v biases)",
    "qwen2_moe": "Qwen2-MoE (routed experts plus a gated shared expert)",
    "qwen3": "Qwen3 (Llama-like with per-head q/k norm)",
    "qwen3_moe": "Qwen3-MoE (routed experts, per-head q/k norm)",
    "deepseek_v2": "DeepSeek-V2 (MLA attention, shared + routed experts)",
    "deepseek_v3": "DeepSeek-V3 (MLA attention, shared + routed experts, MTP)",
    "glm4_moe": "GLM-4.5 MoE (dense first layers, shared expert, partial RoPE, MTP)",
    "solar_open": "Solar Open (GQA, shared + routed experts, no dense layers)",
    "gpt_oss": "gpt-oss (local experts with biases, sliding window, attention sinks)",
    "phimoe": "Phi-MoE (LayerNorm, biases, 16 experts top-2)",
    "gemma": "Gemma (GeGLU, head_dim 256, tied embeddings)",
    "gemma2": "Gemma 2 (four norms per layer, alternating sliding window)",
    "gemma3": "Gemma 3 (Gemma 2 plus per-head q/k norm)",
    "olmo": "OLMo (non-parametric LayerNorm, no biases)",
    "olmo2": "OLMo 2 (RMSNorm after blocks, full q/k norm)",
    "olmoe": "OLMoE (64 experts top-8, full q/k norm)",
    "gpt2": "GPT-2 (learned positions, LayerNorm, biased MLP)",
    "bert": "BERT (encoder, learned positions, token types, pooler)",
}
# A layer count past this is beyond any real model: parameter counting loops once per layer.
MAX_LAYERS = 4096
_MLA = ("deepseek_v2", "deepseek_v3")
_GEMMA = ("gemma", "gemma2", "gemma3")


def _common(spec: ArchSpec, r: Reader) -> None:
    """Fields shared by the decoder families."""
    spec.hidden_size = r.integer("hidden_size", "n_embd", "d_model", minimum=1)
    spec.num_layers = r.integer(
        "num_hidden_layers", "n_layer", "num_layers", minimum=1, maximum=MAX_LAYERS
    )
    spec.num_heads = r.integer("num_attention_heads", "n_head", "num_heads", minimum=1)
    spec.num_kv_heads = r.integer("num_key_value_heads", minimum=1) or spec.num_heads
    spec.intermediate_size = r.integer("intermediate_size", "n_inner", "ffn_dim", minimum=1)
    spec.vocab_size = r.integer("vocab_size", minimum=1)
    spec.max_position_embeddings = r.integer("max_position_embeddings", "n_positions", minimum=1)
    spec.tie_word_embeddings = r.flag("tie_word_embeddings", default=False)
    spec.activation = r.text("hidden_act", "hidden_activation", "activation_function")
    spec.rope_theta = r.number("rope_theta")
    scaling = r.mapping("rope_scaling")
    if scaling is not None:
        kind = scaling.get("rope_type", scaling.get("type"))
        spec.rope_scaling_type = kind if isinstance(kind, str) else None
    spec.partial_rotary_factor = r.number("partial_rotary_factor", default=1.0) or 1.0
    bias = r.flag("attention_bias", default=False)
    spec.qkv_bias = spec.o_bias = bias
    spec.mlp_bias = r.flag("mlp_bias", default=False)
    head_dim = r.integer("head_dim", minimum=1)
    divisible = bool(spec.hidden_size and spec.num_heads and spec.hidden_size % spec.num_heads == 0)
    if head_dim is None and divisible and spec.hidden_size and spec.num_heads:
        head_dim = spec.hidden_size // spec.num_heads
        spec.head_dim_derived = True
    spec.head_dim = head_dim
    if r.flag("use_sliding_window", default=True):
        spec.sliding_window = r.integer("sliding_window", minimum=1)
    else:
        r.raw("sliding_window")
    types = r.array("layer_types")
    if types:
        spec.layer_types = dict(Counter(str(t) for t in types))
    if spec.num_kv_heads is not None and spec.num_heads is not None:
        spec.attention = (
            "mha"
            if spec.num_kv_heads == spec.num_heads
            else "mqa"
            if spec.num_kv_heads == 1
            else "gqa"
        )


def _moe(spec: ArchSpec, r: Reader, family: str) -> None:
    """Mixture-of-experts fields under their various names."""
    spec.num_experts = r.integer("num_local_experts", "num_experts", "n_routed_experts") or 0
    spec.experts_per_token = r.integer("num_experts_per_tok", "experts_per_token", "moe_topk") or 0
    if spec.num_experts and not spec.experts_per_token:
        spec.notes.append("Routed experts but no num_experts_per_tok; active count assumes 1.")
        spec.experts_per_token = 1
    if spec.num_experts and spec.experts_per_token > spec.num_experts:
        spec.notes.append("num_experts_per_tok exceeds the number of experts; capped.")
        spec.experts_per_token = spec.num_experts
    spec.moe_intermediate_size = r.integer("moe_intermediate_size", minimum=1)
    if spec.moe_intermediate_size is None and family in ("mixtral", "gpt_oss", "phimoe", "olmoe"):
        spec.moe_intermediate_size = spec.intermediate_size
    spec.num_shared_experts = r.integer("n_shared_experts", "num_shared_experts") or 0
    spec.shared_expert_intermediate_size = r.integer("shared_expert_intermediate_size")
    if family == "qwen2_moe" and spec.shared_expert_intermediate_size:
        spec.shared_expert_gate = True
    spec.first_k_dense = r.integer("first_k_dense_replace") or 0
    spec.moe_layer_freq = r.integer("moe_layer_freq", "decoder_sparse_step", minimum=1) or 1
    only = r.array("mlp_only_layers") or []
    spec.mlp_only_layers = sorted(
        {i for i in only[:MAX_LAYERS] if isinstance(i, int) and not isinstance(i, bool)}
    )
    spec.router_bias = family in ("gpt_oss",) or (
        family in ("deepseek_v3", "glm4_moe", "solar_open")
        and r.text("topk_method") in (None, "noaux_tc")
    )
    spec.mtp_layers = r.integer("num_nextn_predict_layers", maximum=MAX_LAYERS) or 0


def _mla(spec: ArchSpec, r: Reader) -> None:
    """DeepSeek multi-head latent attention."""
    spec.attention = "mla"
    spec.q_lora_rank = r.integer("q_lora_rank", minimum=1)
    spec.kv_lora_rank = r.integer("kv_lora_rank", minimum=1)
    spec.qk_rope_head_dim = r.integer("qk_rope_head_dim", minimum=0)
    spec.qk_nope_head_dim = r.integer("qk_nope_head_dim", minimum=0)
    spec.v_head_dim = r.integer("v_head_dim", minimum=1)
    if spec.qk_rope_head_dim is not None and spec.qk_nope_head_dim is not None:
        spec.head_dim = spec.qk_rope_head_dim + spec.qk_nope_head_dim
        spec.head_dim_derived = True
    for k in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
        if getattr(spec, k) is None:
            spec.missing.append(k)


def apply_family(spec: ArchSpec, r: Reader, family: str | None) -> None:
    """Fill the spec from the config according to its family (generic when None)."""
    _common(spec, r)
    fam = family or ""
    if fam == "gpt2":
        spec.position, spec.norm, spec.mlp_gated = "learned", "layernorm", False
        spec.qkv_bias = spec.o_bias = spec.mlp_bias = True
        spec.tie_word_embeddings = r.flag("tie_word_embeddings", default=True)
        spec.max_position_embeddings = r.integer("n_positions", "max_position_embeddings")
        if spec.intermediate_size is None and spec.hidden_size:
            spec.intermediate_size = 4 * spec.hidden_size
        spec.activation = spec.activation or "gelu_new"
        return
    if fam == "bert":
        spec.position, spec.norm, spec.mlp_gated = "learned", "layernorm", False
        spec.qkv_bias = spec.o_bias = spec.mlp_bias = True
        spec.tie_word_embeddings = False
        spec.type_vocab_size = r.integer("type_vocab_size", default=2) or 0
        spec.pooler = True
        spec.notes.append("Counted as BertModel (encoder + pooler, no task head).")
        return
    if fam in ("qwen2", "qwen2_moe"):
        spec.qkv_bias, spec.o_bias = True, False
    if fam in ("qwen3", "qwen3_moe", "gemma3", "olmo2") or (
        fam == "glm4_moe" and r.flag("use_qk_norm")
    ):
        spec.qk_norm = "head"
    if fam == "glm4_moe":
        spec.o_bias = False
        spec.partial_rotary_factor = r.number("partial_rotary_factor", default=0.5) or 0.5
    if fam == "olmoe":
        spec.qk_norm = "full"
    if fam == "olmo2":
        spec.qk_norm = "full"
    if fam == "olmo":
        spec.norm, spec.norms_per_layer = "layernorm_nonparam", 2
    if fam == "phimoe":
        spec.norm = "layernorm"
        spec.qkv_bias = spec.o_bias = r.flag("attention_bias", default=True)
        spec.lm_head_bias = r.flag("lm_head_bias", default=True)
    if fam == "gpt_oss":
        spec.qkv_bias = spec.o_bias = True
        spec.attention_sinks = spec.expert_bias = True
    if fam in _GEMMA:
        spec.tie_word_embeddings = r.flag("tie_word_embeddings", default=True)
        if fam != "gemma":
            spec.norms_per_layer = 4
        if "head_dim" not in r.cfg:  # transformers' Gemma configs default to 256, not derived
            spec.head_dim, spec.head_dim_derived = 256, False
            spec.notes.append("head_dim absent: Gemma's default 256 assumed.")
    if fam in ("mistral", "mixtral") and spec.sliding_window is None:
        spec.notes.append("No sliding window: every layer attends to the full context.")
    if fam in _MLA:
        _mla(spec, r)
    if fam in (
        "mixtral",
        "qwen2_moe",
        "qwen3_moe",
        "gpt_oss",
        "phimoe",
        "olmoe",
        "glm4_moe",
        "solar_open",
        *_MLA,
    ) or (
        not fam
        and any(k in r.cfg for k in ("num_local_experts", "num_experts", "n_routed_experts"))
    ):
        _moe(spec, r, fam)
    for k in ("topk_method", "n_group", "topk_group", "scoring_func", "norm_topk_prob"):
        r.raw(k)
