"""`ArchSpec`: the normalised architecture model that the family readers fill in.

It sits below `spec` (which builds it) and `families` (which fill it), so neither imports
the other for it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from companion.model import Model


class ArchSpec(Model):
    """A normalised transformer architecture; fields absent from the config stay None."""

    family: str = Field(description="Normalised family (the model_type, or 'unknown').")
    model_type: str | None = None
    known_family: bool = False
    architectures: list[str] = Field(default_factory=list)
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    head_dim_derived: bool = False
    intermediate_size: int | None = None
    vocab_size: int | None = None
    max_position_embeddings: int | None = None
    tie_word_embeddings: bool = False
    attention: Literal["mha", "gqa", "mqa", "mla", "unknown"] = "unknown"
    mlp_gated: bool = True
    activation: str | None = None
    norm: Literal["rmsnorm", "layernorm", "layernorm_nonparam"] = "rmsnorm"
    norms_per_layer: int = 2
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    qk_norm: Literal["none", "head", "full"] = "none"
    position: Literal["rope", "learned"] = "rope"
    rope_theta: float | None = None
    partial_rotary_factor: float = 1.0
    rope_scaling_type: str | None = None
    sliding_window: int | None = None
    layer_types: dict[str, int] = Field(default_factory=dict)
    attention_sinks: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int | None = None
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int | None = None
    shared_expert_gate: bool = False
    first_k_dense: int = 0
    moe_layer_freq: int = 1
    mlp_only_layers: list[int] = Field(default_factory=list)
    router_bias: bool = False
    expert_bias: bool = False
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    mtp_layers: int = 0
    type_vocab_size: int = 0
    pooler: bool = False
    notes: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    unknown_fields: list[str] = Field(default_factory=list)
    source: str | None = None

    @property
    def is_moe(self) -> bool:
        """Whether the model routes tokens to experts."""
        return self.num_experts > 0

    def is_moe_layer(self, i: int) -> bool:
        """Whether layer `i` uses the MoE block (rather than a dense MLP)."""
        if not self.is_moe or i < self.first_k_dense or i in self.mlp_only_layers:
            return False
        return (
            (i - self.first_k_dense) % max(1, self.moe_layer_freq) == 0
            if self.family
            in (
                "deepseek_v3",
                "deepseek_v2",
            )
            else (i + 1) % max(1, self.moe_layer_freq) == 0
        )

    def moe_layer_count(self) -> int:
        """How many layers are MoE."""
        return sum(self.is_moe_layer(i) for i in range(self.num_layers or 0))

    def summary(self) -> str:
        """One line: family, depth, width, heads, experts."""
        parts = [self.family]
        if self.num_layers:
            parts.append(f"{self.num_layers} layers")
        if self.hidden_size:
            parts.append(f"d={self.hidden_size}")
        if self.num_heads:
            kv = f"/{self.num_kv_heads} kv" if self.num_kv_heads != self.num_heads else ""
            parts.append(f"{self.num_heads} heads{kv}")
        if self.is_moe:
            shared = f" + {self.num_shared_experts} shared" if self.num_shared_experts else ""
            parts.append(f"{self.experts_per_token}/{self.num_experts} experts{shared}")
        if self.vocab_size:
            parts.append(f"vocab {self.vocab_size:,}")
        return ", ".join(parts)
