"""llama.cpp tensor names -> Hugging Face names, so the audit's alignment pairs them up.

The names follow llama.cpp's `gguf-py/gguf/tensor_mapping.py` conventions (written here from
the published naming scheme, not copied). Stacked expert tensors (`ffn_gate_exps`) are split
into one HF name per expert by the caller; this module only names things.
"""

from __future__ import annotations

import re

_BLOCK = re.compile(r"^blk\.(\d+)\.(.+?)(?:\.(\d+))?\.(weight|bias)$")

_TOP = {
    "token_embd": "model.embed_tokens",
    "token_embd_norm": "model.embed_norm",
    "position_embd": "model.embed_positions",
    "output_norm": "model.norm",
    "output": "lm_head",
}

# Inside a block: llama.cpp sub-name -> HF sub-module name.
_IN_BLOCK = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_qkv": "self_attn.qkv_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "ffn_gate_inp": "mlp.gate",
    "ffn_gate_shexp": "mlp.shared_expert.gate_proj",
    "ffn_up_shexp": "mlp.shared_expert.up_proj",
    "ffn_down_shexp": "mlp.shared_expert.down_proj",
    "ffn_gate_inp_shexp": "mlp.shared_expert_gate",
}

# Gemma 2/3 keep four norms per block; llama.cpp names them differently from Llama's two.
_GEMMA = {
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}

# Stacked experts: llama.cpp sub-name -> HF per-expert sub-module (expert index inserted).
EXPERTS = {"ffn_gate_exps": "gate_proj", "ffn_up_exps": "up_proj", "ffn_down_exps": "down_proj"}

# Architectures whose converter permutes Q/K rows for llama.cpp's interleaved rotary layout.
PERMUTED_ARCHS = frozenset({"llama", "granite", "granitemoe"})


def hf_name(name: str, arch: str) -> str:
    """The Hugging Face name of a llama.cpp tensor (unknown names are kept as they are)."""
    base, _, param = name.rpartition(".")
    if param in ("weight", "bias") and base in _TOP:
        return f"{_TOP[base]}.{param}"
    m = _BLOCK.match(name)
    if m is None:
        return name
    layer, sub, expert, param = m.groups()
    prefix = f"model.layers.{layer}"
    if expert is not None and sub in ("ffn_gate", "ffn_up", "ffn_down"):  # old split experts
        return f"{prefix}.mlp.experts.{expert}.{sub[4:]}_proj.{param}"
    if expert is not None:
        return name
    table = {**_IN_BLOCK, **_GEMMA} if arch.startswith("gemma") else _IN_BLOCK
    if sub in table:
        return f"{prefix}.{table[sub]}.{param}"
    return f"{prefix}.{sub}.{param}"


def expert_name(name: str, expert: int) -> str | None:
    """The HF name of one expert's slice of a stacked `ffn_*_exps` tensor (else None)."""
    m = _BLOCK.match(name)
    if m is None or m.group(3) is not None or m.group(2) not in EXPERTS:
        return None
    layer, sub, _, param = m.groups()
    return f"model.layers.{layer}.mlp.experts.{expert}.{EXPERTS[sub]}.{param}"


def rotary_heads(name: str, arch: str, metadata: dict[str, object]) -> int:
    """Heads to un-permute for a Q or K tensor of a permuted architecture (0: leave it)."""
    m = _BLOCK.match(name)
    if arch not in PERMUTED_ARCHS or m is None or m.group(2) not in ("attn_q", "attn_k"):
        return 0
    heads = metadata.get(f"{arch}.attention.head_count")
    kv = metadata.get(f"{arch}.attention.head_count_kv", heads)
    value = heads if m.group(2) == "attn_q" else kv
    if isinstance(value, list):  # per-layer head counts
        layer = int(m.group(1))
        value = value[layer] if layer < len(value) else None
    return value if isinstance(value, int) and value > 0 else 0
