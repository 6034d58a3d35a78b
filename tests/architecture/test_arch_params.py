"""Parameter counts: the five real configs against published figures, and every family."""

from __future__ import annotations

import pytest
from helpers.archfiles import FIXTURES

from companion.architecture.catalog import Published, catalog, find
from companion.architecture.params import count_params
from companion.architecture.spec import build_spec, spec_from_path

# (fixture, published total, published active, convention of the active figure)
PUBLISHED = [
    ("openai__gpt-oss-120b.json", "116.83B", "5.13B", "excl"),
    ("Qwen__Qwen3-30B-A3B.json", "30.5B", "3.3B", "incl"),
    ("deepseek-ai__DeepSeek-V3.json", "671B", "37B", "excl"),
    ("meta-llama__Meta-Llama-3.1-8B.json", "8B", "8B", "incl"),
    ("mistralai__Mixtral-8x7B-v0.1.json", "46.7B", "12.9B", "incl"),
]


@pytest.mark.parametrize(("name", "total", "active", "conv"), PUBLISHED)
def test_real_configs_match_published(name: str, total: str, active: str, conv: str) -> None:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip("../shared/fixtures/configs is not beside the checkout")
    c = count_params(spec_from_path(path))
    pt, pa = Published.parse(total), Published.parse(active)
    # Totals: within 0.5 % for all five.
    assert abs(c.total - pt.value) <= 0.005 * pt.value, (c.total, total)
    got = c.active_excluding_input_embedding if conv == "excl" else c.active
    # Active: within 0.5 %, or (two-digit figures 3.3B, 37B) inside the figure's rounding interval.
    assert pa.agrees(got), (got, active)
    assert c.complete and c.total_excluding_input_embedding < c.total


def test_exact_known_values() -> None:
    """Counts derived by hand from the architecture papers (pin the arithmetic)."""
    if not FIXTURES.exists():
        pytest.skip("no shared fixtures")
    ds = count_params(spec_from_path(FIXTURES / "deepseek-ai__DeepSeek-V3.json"))
    assert ds.total == 671_026_419_200
    assert 11.0e9 < ds.mtp < 12.0e9 and ds.total_with_mtp == ds.total + ds.mtp
    oss = count_params(spec_from_path(FIXTURES / "openai__gpt-oss-120b.json"))
    assert oss.active_excluding_input_embedding == 5_132_849_472
    llama = count_params(spec_from_path(FIXTURES / "meta-llama__Meta-Llama-3.1-8B.json"))
    assert llama.total == llama.active == 8_030_261_248


def test_gpt2_small_exact() -> None:
    """GPT-2 124M: 124,439,808 parameters (tied head, learned positions, biases)."""
    spec = build_spec(
        {
            "model_type": "gpt2",
            "n_embd": 768,
            "n_layer": 12,
            "n_head": 12,
            "vocab_size": 50257,
            "n_positions": 1024,
        }
    )
    assert count_params(spec).total == 124_439_808


def test_bert_base_exact() -> None:
    """bert-base-uncased as BertModel: 109,482,240 parameters."""
    spec = build_spec(
        {
            "model_type": "bert",
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "vocab_size": 30522,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
        }
    )
    assert count_params(spec).total == 109_482_240


def tiny(model_type: str, **extra: object) -> dict[str, object]:
    """A small config of a family (hyperparameters typed in)."""
    base: dict[str, object] = {
        "model_type": model_type,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 100,
        "tie_word_embeddings": False,
    }
    base.update(extra)
    return base


H, V, L, FF = 64, 100, 2, 128
ATT = H * 64 + 2 * H * 32 + 64 * H  # q (4x16), k/v (2x16), o
MLP = 3 * H * FF
DENSE = 2 * V * H + H + L * (ATT + MLP + 2 * H)


@pytest.mark.parametrize(
    "family", ["llama", "mistral", "qwen3", "gemma2", "gemma3", "olmo", "qwen2"]
)
def test_dense_families_by_hand(family: str) -> None:
    spec = build_spec(tiny(family, tie_word_embeddings=False, head_dim=16))
    c = count_params(spec)
    expected = DENSE
    if family == "qwen3" or family == "gemma3":
        expected += L * 2 * 16  # per-head q/k norms
    if family in ("gemma2", "gemma3"):
        expected += L * 2 * H  # four norms per layer
    if family == "olmo":
        expected -= L * 2 * H + H  # non-parametric LayerNorm
    if family == "qwen2":
        expected += L * (64 + 32 + 32)  # q/k/v biases
    assert spec.known_family and c.total == expected and c.active == expected


def test_gemma_ties_by_default() -> None:
    cfg = tiny("gemma", head_dim=16)
    del cfg["tie_word_embeddings"]
    c = count_params(build_spec(cfg))
    assert c.breakdown.output_head == 0 and c.total == DENSE - V * H
    del cfg["head_dim"]
    assert build_spec(cfg).head_dim == 256  # transformers' Gemma default, not hidden/heads


def test_mixtral_and_qwen3_moe_active() -> None:
    m = count_params(build_spec(tiny("mixtral", num_local_experts=4, num_experts_per_tok=2)))
    router = H * 4
    assert m.total == 2 * V * H + H + L * (ATT + 4 * MLP + router + 2 * H)
    assert m.active == 2 * V * H + H + L * (ATT + 2 * MLP + router + 2 * H)
    q = build_spec(
        tiny(
            "qwen3_moe",
            num_experts=8,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
            mlp_only_layers=[0],
        )
    )
    c = count_params(q)
    expert = 3 * H * 32
    assert q.moe_layer_count() == 1
    assert c.total == 2 * V * H + H + L * (ATT + 2 * 16 + 2 * H) + MLP + 8 * expert + H * 8


def test_qwen2_moe_shared_expert_gate() -> None:
    s = build_spec(
        tiny(
            "qwen2_moe",
            num_experts=4,
            num_experts_per_tok=1,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=96,
        )
    )
    c = count_params(s)
    per_layer_shared = 3 * H * 96 + H
    assert c.breakdown.shared_experts == L * per_layer_shared
    assert s.shared_expert_gate


def test_deepseek_mla_first_dense_and_mtp() -> None:
    cfg = tiny(
        "deepseek_v3",
        q_lora_rank=24,
        kv_lora_rank=16,
        qk_rope_head_dim=8,
        qk_nope_head_dim=16,
        v_head_dim=16,
        n_routed_experts=4,
        n_shared_experts=1,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        first_k_dense_replace=1,
        num_nextn_predict_layers=1,
        num_key_value_heads=4,
    )
    s = build_spec(cfg)
    assert s.attention == "mla" and s.head_dim == 24 and s.moe_layer_count() == 1
    c = count_params(s)
    att = (H * 24 + 24 + 24 * 4 * 24) + (H * (16 + 8) + 16 + 16 * 4 * (16 + 16)) + 4 * 16 * H
    moe = 4 * 3 * H * 32 + 3 * H * 32 + H * 4 + 4
    assert c.per_layer_attention == att
    assert c.total == 2 * V * H + H + L * (att + 2 * H) + MLP + moe
    assert c.mtp == att + 2 * H + moe + 2 * H * H + 3 * H
    assert c.active == c.total - 2 * 3 * H * 32


def test_glm4_moe_partial_rotary_and_biases() -> None:
    s = build_spec(
        tiny(
            "glm4_moe",
            n_routed_experts=4,
            n_shared_experts=1,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
            first_k_dense_replace=1,
            attention_bias=True,
            partial_rotary_factor=0.5,
            num_nextn_predict_layers=1,
            head_dim=16,
        )
    )
    assert s.partial_rotary_factor == 0.5 and s.qkv_bias and not s.o_bias
    assert s.first_k_dense == 1 and s.mtp_layers == 1 and s.num_shared_experts == 1
    c = count_params(s)
    assert c.per_layer_attention == ATT + 64 + 32 + 32


def test_gpt_oss_sinks_and_expert_biases() -> None:
    s = build_spec(
        tiny(
            "gpt_oss",
            num_local_experts=4,
            num_experts_per_tok=2,
            head_dim=16,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
        )
    )
    c = count_params(s)
    assert s.attention_sinks and s.sliding_window == 8
    assert s.layer_types == {"sliding_attention": 1, "full_attention": 1}
    assert c.per_layer_attention == ATT + 64 + 32 + 32 + H + 4
    assert c.per_expert == 3 * H * FF + 2 * FF + H


def test_phimoe_layernorm_and_head_bias() -> None:
    s = build_spec(tiny("phimoe", num_local_experts=4, num_experts_per_tok=2))
    c = count_params(s)
    assert s.norm == "layernorm" and s.lm_head_bias
    assert c.breakdown.output_head == V * H + V
    assert c.breakdown.norms == L * 4 * H + 2 * H


def test_olmoe_full_qk_norm() -> None:
    s = build_spec(tiny("olmoe", num_experts=4, num_experts_per_tok=2))
    assert count_params(s).per_layer_attention == ATT + 64 + 32


def test_unknown_family_lists_fields() -> None:
    s = build_spec(
        {
            **tiny("mystery_lm"),
            "frobnication_depth": 3,
            "num_local_experts": 2,
            "num_experts_per_tok": 1,
        }
    )
    assert not s.known_family and s.family == "mystery_lm"
    assert "frobnication_depth" in s.unknown_fields
    assert s.is_moe and count_params(s).total > 0
    assert any("Unknown model_type" in n for n in s.notes)


def test_catalog_has_25_models_with_sources() -> None:
    entries = catalog()
    assert len(entries) >= 25
    for e in entries:
        assert e.source and e.spec().known_family, e.name
        assert e.published_total.agrees(e.params().total, rel=0.05), e.name
    assert find("glm-4.5-air").spec().vocab_size == 151_552
    assert find("upstage/Solar-Open-100B").spec().vocab_size == 196_608
