"""Parameter counts (total and active) from an ArchSpec, with the conventions stated.

Conventions (all figures are counts of stored parameters, not bytes):
- `total` counts every weight of the main model: token embedding, output projection
  (once if tied), all layers with every routed and shared expert, routers (and their bias
  vectors), norms and biases. Multi-token-prediction (MTP) layers are NOT in `total`; they are
  reported separately as `mtp` (DeepSeek-V3's 671B excludes its 14B MTP module, for example).
- `active` counts what one token touches: embedding row table, attention, norms, router, the
  top-k routed experts, the shared experts, and the output projection.
- "input embedding" means the token-embedding table (vocab_size x hidden_size). The
  `*_excluding_input_embedding` figures drop it; when the output projection is tied to it the
  shared matrix is dropped once. Learned position / token-type tables are kept.
Publishers differ: e.g. OpenAI's gpt-oss active figure excludes the input embedding, Mistral's
Mixtral figure includes it. The catalog records which convention each published figure uses.
"""

from __future__ import annotations

from pydantic import Field

from companion.architecture.spec import ArchSpec
from companion.model import Model


class ParamBreakdown(Model):
    """Parameters by component (whole model, main stack; MTP separate)."""

    input_embedding: int = 0
    position_embeddings: int = 0
    output_head: int = 0
    attention: int = 0
    dense_mlp: int = 0
    routed_experts: int = 0
    shared_experts: int = 0
    routers: int = 0
    norms: int = 0
    other: int = 0


class ParamCount(Model):
    """Total and active parameter counts with the convention of each figure."""

    family: str
    total: int
    active: int
    total_excluding_input_embedding: int
    active_excluding_input_embedding: int
    mtp: int = Field(0, description="Multi-token-prediction layers (not in total).")
    total_with_mtp: int = 0
    breakdown: ParamBreakdown = Field(default_factory=ParamBreakdown)
    per_layer_attention: int = 0
    per_expert: int = 0
    complete: bool = Field(True, description="False when fields were missing (count partial).")
    notes: list[str] = Field(default_factory=list)


def _attention(s: ArchSpec) -> int:
    """Parameters of one attention block (projections, biases, q/k norms, sinks)."""
    h, heads = s.hidden_size or 0, s.num_heads or 0
    if s.attention == "mla":
        rope, nope, v = s.qk_rope_head_dim or 0, s.qk_nope_head_dim or 0, s.v_head_dim or 0
        kv_rank = s.kv_lora_rank or 0
        qk = rope + nope
        if s.q_lora_rank:
            q = h * s.q_lora_rank + s.q_lora_rank + s.q_lora_rank * heads * qk
        else:
            q = h * heads * qk
        kv = h * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v)
        return q + kv + heads * v * h
    hd = s.head_dim or (h // heads if heads else 0)
    kvh = s.num_kv_heads or heads
    q_out, kv_out = heads * hd, kvh * hd
    n = h * q_out + 2 * h * kv_out + q_out * h
    if s.qkv_bias:
        n += q_out + 2 * kv_out
    if s.o_bias:
        n += h
    if s.qk_norm == "head":
        n += 2 * hd
    elif s.qk_norm == "full":
        n += q_out + kv_out
    if s.attention_sinks:
        n += heads
    return n


def _mlp(s: ArchSpec, width: int) -> int:
    """One feed-forward block of hidden width `width` (gated or plain, with biases)."""
    h = s.hidden_size or 0
    if s.mlp_gated:
        n = 3 * h * width
        if s.mlp_bias or s.expert_bias:
            n += 2 * width + h
        return n
    n = 2 * h * width
    if s.mlp_bias:
        n += width + h
    return n


def _norm(s: ArchSpec, width: int) -> int:
    """One norm layer's parameters."""
    if s.norm == "layernorm_nonparam":
        return 0
    return 2 * width if s.norm == "layernorm" else width


def _layer(s: ArchSpec, moe: bool, b: ParamBreakdown | None) -> tuple[int, int]:
    """(total, active) of one decoder layer; adds to breakdown `b` when given."""
    h = s.hidden_size or 0
    attn = _attention(s)
    norms = s.norms_per_layer * _norm(s, h)
    if not moe:
        mlp = _mlp(s, s.intermediate_size or 0)
        if b is not None:
            b.attention += attn
            b.norms += norms
            b.dense_mlp += mlp
        return attn + norms + mlp, attn + norms + mlp
    expert = _mlp(s, s.moe_intermediate_size or 0)
    routed = s.num_experts * expert
    shared = 0
    if s.num_shared_experts:
        shared = _mlp(s, (s.moe_intermediate_size or 0) * s.num_shared_experts)
    if s.shared_expert_intermediate_size:
        shared += _mlp(s, s.shared_expert_intermediate_size)
        if s.shared_expert_gate:
            shared += h
    router = h * s.num_experts + (s.num_experts if s.router_bias else 0)
    if b is not None:
        b.attention += attn
        b.norms += norms
        b.routed_experts += routed
        b.shared_experts += shared
        b.routers += router
    total = attn + norms + routed + shared + router
    active = attn + norms + s.experts_per_token * expert + shared + router
    return total, active


def count_params(s: ArchSpec) -> ParamCount:
    """Count total and active parameters of a spec (partial when fields are missing)."""
    h, vocab = s.hidden_size or 0, s.vocab_size or 0
    b = ParamBreakdown()
    b.input_embedding = vocab * h
    if s.position == "learned":
        b.position_embeddings = (s.max_position_embeddings or 0) * h + s.type_vocab_size * h
    if s.family != "bert" and not s.tie_word_embeddings:
        b.output_head = vocab * h
    if s.lm_head_bias:
        b.output_head += vocab
    total = active = 0
    for i in range(s.num_layers or 0):
        t, a = _layer(s, s.is_moe_layer(i), b)
        total += t
        active += a
    final_norm = _norm(s, h)
    if s.family == "bert":
        final_norm = _norm(s, h)  # embedding LayerNorm; BERT has no final norm
        b.other += h * h + h  # pooler
    b.norms += final_norm
    rest = b.position_embeddings + b.output_head + final_norm + b.other
    total += rest + b.input_embedding
    active += rest + b.input_embedding
    mtp = 0
    if s.mtp_layers:
        # Each MTP module: one MoE decoder layer + eh_proj (2h -> h) + enorm, hnorm, final norm.
        mtp_layer, _ = _layer(s, s.is_moe, None)
        mtp = s.mtp_layers * (mtp_layer + 2 * h * h + 3 * _norm(s, h))
    attn_layer = _attention(s)
    notes = []
    if s.missing:
        notes.append("Partial count: missing " + ", ".join(s.missing) + ".")
        notes += [n for n in s.notes if n.split(" ", 1)[0] in s.missing]  # why, if it was set
    if s.tie_word_embeddings:
        notes.append("Output projection tied to the input embedding: counted once.")
    if mtp:
        notes.append(f"MTP layers ({s.mtp_layers}) counted separately: {mtp:,}.")
    return ParamCount(
        family=s.family,
        total=total,
        active=active,
        total_excluding_input_embedding=total - b.input_embedding,
        active_excluding_input_embedding=active - b.input_embedding,
        mtp=mtp,
        total_with_mtp=total + mtp,
        breakdown=b,
        per_layer_attention=attn_layer,
        per_expert=_mlp(s, s.moe_intermediate_size or 0) if s.is_moe else 0,
        complete=not s.missing,
        notes=notes,
    )


def human(n: float) -> str:
    """A parameter count as 8.03B / 124M / 3.2K."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            v = n / scale
            return f"{v:.3g}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return str(int(n))
