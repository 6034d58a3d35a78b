"""Hostile input: only CompanionError may escape, with a next step."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from helpers.archfiles import write_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.architecture.analysis import analyse
from companion.architecture.params import count_params
from companion.architecture.spec import MAX_CONFIG_BYTES, build_spec, spec_from_path
from companion.architecture.tokenizer import load_vocab
from companion.errors import CompanionError, InputError
from companion.toolbox import run_tool
from companion.tools import ToolContext


@pytest.mark.parametrize("text", ["[1, 2]", '"x"', "42", "null", "", "{", '{"a": }', "\x00\xff"])
def test_non_object_or_broken_config(tmp_path: Path, text: str) -> None:
    p = tmp_path / "config.json"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        spec_from_path(p)
    assert info.value.hint


def test_wrong_types_are_read_with_notes() -> None:
    s = build_spec(
        {
            "model_type": "llama",
            "hidden_size": "4096",
            "num_hidden_layers": 32.0,
            "num_attention_heads": True,
            "vocab_size": [1],
            "intermediate_size": -5,
        }
    )
    assert s.hidden_size == 4096 and s.num_layers == 32
    assert s.num_heads is None and s.vocab_size is None and s.intermediate_size is None
    assert any("string" in n for n in s.notes) and any("boolean" in n for n in s.notes)
    assert {"num_attention_heads", "vocab_size", "intermediate_size"} <= set(s.missing)
    assert count_params(s).complete is False


def test_missing_fields_give_partial_spec() -> None:
    s = build_spec({"model_type": "qwen3"})
    assert s.missing and count_params(s).total == 0


def test_a_count_beyond_its_bound_is_named_in_the_parameter_notes() -> None:
    """10^8 layers is not "missing": the count says which value it ignored and why."""
    cfg = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 10**8}
    cfg |= {"num_attention_heads": 4, "vocab_size": 100, "intermediate_size": 128}
    notes = count_params(build_spec(cfg)).notes
    assert "Partial count: missing num_hidden_layers." in notes
    assert any(n.startswith("num_hidden_layers = 100000000 is out of range") for n in notes)


def test_huge_and_deep_files(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(MAX_CONFIG_BYTES + 1)
    with pytest.raises(InputError, match="at most"):
        spec_from_path(big)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(InputError):
        spec_from_path(deep)
    deep_obj = tmp_path / "deep2.json"
    deep_obj.write_text('{"a":' * 5000 + "1" + "}" * 5000)
    with pytest.raises(InputError, match="nested too deeply"):
        spec_from_path(deep_obj)
    deep_obj.write_text('{"a":' * 200 + "1" + "}" * 200)
    spec = spec_from_path(deep_obj)  # valid JSON, nothing understood
    assert spec.unknown_fields == ["a"]


def test_bad_tokenizers(tmp_path: Path) -> None:
    for name, content in [
        ("t.json", "[]"),
        ("u.json", '{"model": {"vocab": 3}}'),
        ("v.json", "{not json"),
        ("w.txt", b"\xff\xfe"),
    ]:
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(InputError):
            load_vocab(p)
    with pytest.raises(InputError):
        load_vocab(tmp_path / "absent.json")


def test_tool_errors_are_companion_errors(tmp_path: Path) -> None:
    ctx = ToolContext(roots=[tmp_path], confine=True)
    with pytest.raises(InputError, match="outside the workspace"):
        run_tool("arch.describe", {"path": "/etc/passwd"}, ctx)
    with pytest.raises(InputError):
        run_tool("arch.diff", {"a": "catalog:nope", "b": "catalog:GPT-2 XL"}, ctx)
    with pytest.raises(InputError):
        run_tool("arch.nearest", {"path": str(tmp_path), "k": 0}, ctx)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "model_type",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "vocab_size",
        "intermediate_size",
        "head_dim",
        "num_local_experts",
        "num_experts_per_tok",
        "n_routed_experts",
        "first_k_dense_replace",
        "kv_lora_rank",
        "q_lora_rank",
        "layer_types",
        "tie_word_embeddings",
        "rope_scaling",
        "text_config",
        "mlp_only_layers",
        "moe_layer_freq",
        "n_embd",
        "partial_rotary_factor",
    ]
)
small_ints = st.integers(-3, 70) | st.sampled_from(["64", "x", 1.5, None, True, [2], {}])
configs = st.dictionaries(keys, small_ints | json_values, max_size=12).map(
    lambda d: {**d, "model_type": st_family(d.get("model_type"))}
)
FAMS = [
    "llama",
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
    "deepseek_v3",
    "glm4_moe",
    "gpt_oss",
    "phimoe",
    "gemma3",
    "olmoe",
    "gpt2",
    "bert",
    "mystery",
]


def st_family(v: object) -> object:
    """Map arbitrary values onto families (or keep a hostile value)."""
    return FAMS[v % len(FAMS)] if isinstance(v, int) and not isinstance(v, bool) else v


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs)
def test_fuzz_configs_only_companion_errors(cfg: dict[str, object]) -> None:
    try:
        spec = build_spec(cfg)
        count_params(spec)
    except CompanionError:
        pass
    text = json.dumps(cfg, default=str)
    a = analyse(text, None)
    a.problems()
    for off in range(0, len(text), max(1, len(text) // 7)):
        a.hover(off)


@given(text=st.text(alphabet='{}[]:,"\\/*\n -0123456789aeflnrstu', max_size=60))
def test_fuzz_text_never_raises(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    a = analyse(text, None)
    a.problems()
    a.hover(len(text) // 2)
    p = tmp_path_factory.mktemp("f") / "config.json"
    p.write_text(text, encoding="utf-8")
    with contextlib.suppress(CompanionError):
        spec_from_path(p)


def test_tokenizer_json_written_by_generator_roundtrips(tmp_path: Path) -> None:
    p = write_json(
        tmp_path / "tokenizer.json",
        {"model": {"type": "Unigram", "vocab": [["a", 0.0], ["b", -1.0]]}},
    )
    assert load_vocab(p).size == 2
