"""GGUF metadata read as a Hugging Face style config (for ArchSpec) and as a vocabulary.

llama.cpp stores hyperparameters as `{arch}.block_count`, `{arch}.embedding_length`, ... and
the tokenizer as `tokenizer.ggml.tokens` / `merges` arrays; this maps them onto the config.json
keys `build_spec` and the tokenizer comparison already read. The header parser is the audit's
validating one, so hostile files fail the same clean way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from companion.audit.gguf_format import GGUFHeader, read_header

# llama.cpp architecture name -> HF model_type (where they differ).
_MODEL_TYPE = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss"}
# `{arch}.` suffix -> config.json key.
_KEYS = {
    "block_count": "num_hidden_layers",
    "embedding_length": "hidden_size",
    "feed_forward_length": "intermediate_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.key_length": "head_dim",
    "context_length": "max_position_embeddings",
    "rope.freq_base": "rope_theta",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "vocab_size": "vocab_size",
    "expert_count": "num_local_experts",
    "expert_used_count": "num_experts_per_tok",
    "expert_feed_forward_length": "moe_intermediate_size",
    "expert_shared_count": "n_shared_experts",
    "leading_dense_block_count": "first_k_dense_replace",
}


def config_from_header(header: GGUFHeader) -> dict[str, Any]:
    """An HF-style config dict from GGUF metadata."""
    arch, meta = header.arch, header.metadata
    cfg: dict[str, Any] = {"model_type": _MODEL_TYPE.get(arch, arch), "architectures": []}
    for suffix, key in _KEYS.items():
        value = meta.get(f"{arch}.{suffix}")
        if isinstance(value, (list, np.ndarray)):  # per-layer values: the first layer's
            value = value[0] if len(value) else None
        if isinstance(value, np.generic):
            value = value.item()
        if value is not None:
            cfg[key] = value
    tokens = meta.get("tokenizer.ggml.tokens")
    if "vocab_size" not in cfg and isinstance(tokens, list):
        cfg["vocab_size"] = len(tokens)
    names = {t.name for t in header.tensors}
    cfg["tie_word_embeddings"] = "output.weight" not in names
    for key in ("bos_token_id", "eos_token_id"):
        if isinstance(meta.get(f"tokenizer.ggml.{key}"), int):
            cfg[key] = meta[f"tokenizer.ggml.{key}"]
    return cfg


def gguf_config(path: Path) -> dict[str, Any]:
    """The HF-style config of a .gguf file."""
    return config_from_header(read_header(path))


def gguf_vocab(path: Path) -> tuple[str, dict[str, int], set[str]]:
    """(tokenizer kind, token -> id, merges) from a GGUF's tokenizer arrays."""
    meta = read_header(path).metadata
    tokens = meta.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        from companion.errors import InputError

        raise InputError(
            f"{path} holds no tokenizer.ggml.tokens array.",
            hint="pass a GGUF converted with its tokenizer, or the model's tokenizer.json.",
        )
    ids: dict[str, int] = {}
    for i, t in enumerate(tokens):
        ids.setdefault(t, i)
    merges = meta.get("tokenizer.ggml.merges")
    keys = {m for m in merges if isinstance(m, str)} if isinstance(merges, list) else set()
    model = meta.get("tokenizer.ggml.model")
    kind = {"gpt2": "BPE", "llama": "Unigram (SentencePiece)", "bert": "WordPiece"}.get(
        model if isinstance(model, str) else "", str(model)
    )
    return f"{kind} (GGUF)", ids, keys
