"""Map tensor names across naming schemes to (layer, role, slot, expert) and pair them up."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ROLES = (
    "embedding", "norm", "q", "k", "v", "o", "qkv", "kv",
    "up", "gate", "down", "expert", "router", "lm_head", "other",
)  # fmt: skip
GROUPS: dict[str, tuple[str, ...]] = {
    "embedding": ("embedding",),
    "norm": ("norm",),
    "attn": ("q", "k", "v", "o", "qkv", "kv"),
    "mlp": ("up", "gate", "down"),
    "expert": ("expert",),
    "router": ("router",),
    "lm_head": ("lm_head",),
    "other": ("other",),
}
ROLE_GROUP = {role: group for group, roles in GROUPS.items() for role in roles}

_PREFIXES = ("module.", "model.", "transformer.", "language_model.", "bert.", "gpt_neox.")
_LAYER = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)\.")
_EXPERT = re.compile(r"(?:^|\.)experts\.(\d+)\.")

# Sub-module name (inside a layer) -> (role, slot). Checked in order; first match wins.
_IN_LAYER: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern), role, slot)
    for pattern, role, slot in (
        (r"shared_experts?\.(gate_proj|w1)$", "expert", "shared.gate"),
        (r"shared_experts?\.(up_proj|w3)$", "expert", "shared.up"),
        (r"shared_experts?\.(down_proj|w2)$", "expert", "shared.down"),
        (r"shared_expert_gate$", "router", "shared_gate"),
        (r"experts\.(gate_proj|w1)$", "expert", "gate"),
        (r"experts\.(up_proj|w3)$", "expert", "up"),
        (r"experts\.(down_proj|w2)$", "expert", "down"),
        (r"experts\.(\w+)$", "expert", "="),
        (r"(mlp|block_sparse_moe|moe)\.(gate|router)(\.\w+)?$", "router", "router"),
        (r"(input_layernorm|ln_1|attention_norm|attn_norm|norm1)$", "norm", "attn_norm"),
        (r"(post_attention_layernorm|ln_2|ffn_norm|norm2)$", "norm", "mlp_norm"),
        (r"pre_feedforward_layernorm$", "norm", "mlp_norm"),
        (r"post_feedforward_layernorm$", "norm", "mlp_out_norm"),
        (r"attention\.output\.LayerNorm$", "norm", "attn_out_norm"),
        (r"^output\.LayerNorm$", "norm", "mlp_out_norm"),
        (r"(q_norm|q_layernorm|q_a_layernorm)$", "norm", "q_norm"),
        (r"(k_norm|k_layernorm|kv_a_layernorm)$", "norm", "k_norm"),
        (r"(q_a_proj|q_b_proj)$", "q", "="),
        (r"(q_proj|query|wq)$", "q", "q"),
        (r"(k_proj|key|wk)$", "k", "k"),
        (r"(v_proj|value|wv)$", "v", "v"),
        (r"(kv_a_proj_with_mqa|kv_b_proj)$", "kv", "="),
        (r"(c_attn|qkv_proj|query_key_value|Wqkv)$", "qkv", "qkv"),
        (r"(o_proj|attn\.c_proj|attention\.output\.dense|wo|out_proj|attention\.dense)$", "o", "o"),
        (r"(gate_proj|w1)$", "gate", "gate"),
        (r"(up_proj|w3|c_fc|intermediate\.dense|fc1|dense_h_to_4h)$", "up", "up"),
        (r"(down_proj|w2|mlp\.c_proj|^output\.dense|fc2|dense_4h_to_h)$", "down", "down"),
        (r"\w*norm\w*$", "norm", "norm"),
    )
)
_TOP: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern), role, slot)
    for pattern, role, slot in (
        (r"(embed_tokens|wte|word_embeddings|tok_embeddings|embed_in)$", "embedding", "tok"),
        (r"(wpe|position_embeddings)$", "embedding", "pos"),
        (r"token_type_embeddings$", "embedding", "type"),
        (r"embeddings\.LayerNorm$", "norm", "embed_norm"),
        (r"(lm_head|embed_out|^output)$", "lm_head", "lm_head"),
        (r"(^norm|ln_f|final_layernorm|final_layer_norm)$", "norm", "final"),
    )
)


@dataclass(frozen=True)
class Key:
    """The scheme-independent identity of a tensor."""

    role: str
    slot: str
    layer: int | None
    expert: int | None
    param: str

    def site(self) -> tuple[str, str, int | None, str]:
        """The identity without the layer (for cross-layer comparisons)."""
        return (self.role, self.slot, self.expert, self.param)


@dataclass(frozen=True)
class Named:
    """A parsed tensor name."""

    name: str
    key: Key
    mtp: bool


def _strip(name: str) -> str:
    """Drop wrapper prefixes (model., transformer., ...)."""
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if name.startswith(p):
                name, changed = name[len(p) :], True
    return name


def parse_name(name: str, mtp_from: int | None = None) -> Named:
    """Parse one tensor name; layers >= `mtp_from` (from config) or `mtp.` names are MTP."""
    body = _strip(name)
    param = "weight"
    head, _, last = body.rpartition(".")
    if last in ("weight", "bias", "gamma", "beta", "scale"):
        body = head
        param = {"gamma": "weight", "beta": "bias", "scale": "weight"}.get(last, last)
    mtp = body.startswith("mtp.") or ".mtp." in body
    layer_m = _LAYER.search(body + ".")
    layer = int(layer_m.group(1)) if layer_m else None
    if layer is not None and mtp_from is not None and layer >= mtp_from:
        mtp = True
    if layer_m is None:
        for pattern, role, slot in _TOP:
            if pattern.search(body):
                return Named(name, Key(role, slot, None, None, param), mtp)
        return Named(name, Key("other", body, None, None, param), mtp)
    rest = body[layer_m.end() :] if layer_m.end() <= len(body) else ""
    expert_m = _EXPERT.search("." + rest + ".")
    expert = int(expert_m.group(1)) if expert_m else None
    if expert_m:
        rest = _EXPERT.sub(".experts.", "." + rest + ".").strip(".")
    rest = rest.replace("self_attn.", "attn.").replace("attention.self.", "")
    for pattern, role, slot in _IN_LAYER:
        if m := pattern.search(rest):
            slot = m.group(m.lastindex or 0) if slot == "=" else slot
            return Named(name, Key(role, slot, layer, expert, param), mtp)
    return Named(name, Key("other", rest, layer, expert, param), mtp)


def mtp_start(config: dict[str, Any]) -> int | None:
    """First MTP layer index when config.json declares num_nextn_predict_layers."""
    extra = config.get("num_nextn_predict_layers")
    layers = config.get("num_hidden_layers", config.get("n_layer"))
    if isinstance(extra, int) and extra > 0 and isinstance(layers, int):
        return layers
    return None


def map_layers(
    layers_a: list[int], layers_b: list[int], score: np.ndarray[Any, Any]
) -> dict[int, int]:
    """Map each B layer to an A layer, monotone, maximizing total similarity.

    `score[i, j]` is the similarity of A layer `layers_a[i]` and B layer `layers_b[j]`.
    Equal depths map in order. A shallower B (pruned) maps injectively; a deeper B
    (depth up-scaled) may reuse A layers, keeping order.
    """
    import numpy as np  # lazy: keeps server start-up light

    na, nb = len(layers_a), len(layers_b)
    if na == nb:
        return {b: a for a, b in zip(layers_a, layers_b, strict=True)}
    if na == 0 or nb == 0:
        return {}
    strict = nb <= na
    neg = -1e18
    best = np.full((nb, na), neg)
    back = np.zeros((nb, na), dtype=np.int64)
    best[0] = score[:, 0]
    for j in range(1, nb):
        prev = best[j - 1]
        # running argmax of prev over i' < i (strict) or i' <= i (non-strict)
        run_val, run_idx = neg, 0
        for i in range(na):
            if not strict and prev[i] > run_val:
                run_val, run_idx = prev[i], i
            if run_val > neg / 2:
                best[j, i] = run_val + score[i, j]
                back[j, i] = run_idx
            if strict and prev[i] > run_val:
                run_val, run_idx = prev[i], i
    i = int(np.argmax(best[nb - 1]))
    chosen = [0] * nb
    for j in range(nb - 1, -1, -1):
        chosen[j] = i
        i = int(back[j, i])
    return {layers_b[j]: layers_a[chosen[j]] for j in range(nb)}


def role_filter(groups: list[str]) -> set[str]:
    """Expand role groups (norm, attn, mlp, ...) and single roles to a set of roles."""
    roles: set[str] = set()
    for g in groups:
        roles.update(GROUPS.get(g, (g,)))
    return roles
