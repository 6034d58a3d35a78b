"""JSONC parsing, diff, nearest, tokenizer comparison and the tools through the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.archfiles import FIXTURES, bpe_tokenizer, byte_tokens, write_json

from companion.architecture.catalog import find
from companion.architecture.diff import diff_specs
from companion.architecture.jsonc import parse, to_python
from companion.architecture.nearest import nearest
from companion.architecture.spec import build_spec
from companion.architecture.tokenizer import compare_vocabs, load_vocab
from companion.toolbox import run_tool
from companion.tools import ToolContext


def test_jsonc_comments_trailing_commas_positions() -> None:
    text = '{\n  // comment\n  "a": 1, /* block */\n  "b": [1, 2,],\n  "é": "x",\n}'
    p = parse(text)
    assert p.errors == []
    assert to_python(p.root) == {"a": 1, "b": [1, 2], "é": "x"}
    chain = p.path_at(text.index('"b"') + 1)
    assert [m.key for m in chain] == ["b"]
    off = text.index('"x"')
    line, col = p.position(off)
    assert (line, col) == (4, 7) and p.offset(line, col) == off


def test_jsonc_recovers_from_typing_errors() -> None:
    p = parse('{"model_type": "llama", "hidden_size": 40, "num_attention_heads": ')
    assert p.errors and to_python(p.root)["hidden_size"] == 40
    p = parse('{"a": 1 "b": 2, "c": tru}')
    assert to_python(p.root)["b"] == 2 and len(p.errors) >= 2
    p = parse('{"a": "unterminated\n, "b": 3}')
    assert p.errors and to_python(p.root).get("b") == 3


def test_jsonc_depth_is_bounded() -> None:
    p = parse("[" * 100_000 + "]" * 100_000)
    assert any("Nested deeper" in e.message for e in p.errors)


def test_diff_solar_vs_glm_has_meaning() -> None:
    d = diff_specs(find("Solar-Open-100B").spec(), find("GLM-4.5-Air").spec())
    fields = {x.field: x for x in d.differences}
    assert fields["first_k_dense"].meaning == (
        "A has no dense first layers: first_k_dense_replace 0 vs 1."
    )
    assert "48 vs 46" in fields["num_layers"].meaning
    assert fields["vocab_size"].a == 196_608 and fields["vocab_size"].b == 151_552
    assert fields["num_heads"].a == 64 and fields["num_heads"].b == 96
    assert {"mtp_layers", "partial_rotary_factor"} <= fields.keys()
    assert not d.shapes_compatible and 0.1 < d.distance < 0.5
    same = diff_specs(find("Llama-3.1-8B").spec(), find("Llama-3.1-8B").spec())
    assert same.distance == 0 and same.shapes_compatible and not same.differences
    b_no_dense = diff_specs(find("GLM-4.5-Air").spec(), find("Solar-Open-100B").spec())
    assert any(x.meaning.startswith("B has no dense first layers") for x in b_no_dense.differences)


def test_nearest_finds_itself_and_family() -> None:
    spec = build_spec(dict(find("Qwen3-30B-A3B").config))
    ranked = nearest(spec, 3)
    assert ranked[0].name == "Qwen3-30B-A3B" and ranked[0].distance == 0
    assert ranked[1].name.startswith("Qwen")
    tweaked = dict(find("Llama-2-7B").config, num_hidden_layers=30)
    assert nearest(build_spec(tweaked), 1)[0].name == "Llama-2-7B"


def test_tokenizer_same_extended_unrelated(tmp_path: Path) -> None:
    base = byte_tokens(500)
    merges = [f"t{i} t{i + 1}" for i in range(200)]
    a = write_json(tmp_path / "a/tokenizer.json", bpe_tokenizer(base, merges, {"<s>": 500}))
    same = write_json(tmp_path / "same/tokenizer.json", bpe_tokenizer(base, merges, {"<s>": 500}))
    ext = write_json(
        tmp_path / "ext/tokenizer.json",
        bpe_tokenizer(base + byte_tokens(100, "new"), [m.split() for m in merges], {"<s>": 600}),
    )
    other = write_json(tmp_path / "o/tokenizer.json", bpe_tokenizer(byte_tokens(500, "u"), []))
    va = load_vocab(a)
    assert va.size == 501 and va.added == 1
    r = compare_vocabs(va, load_vocab(same))
    assert r.relation == "same" and r.jaccard == 1.0 and r.merges_jaccard == 1.0
    r = compare_vocabs(va, load_vocab(ext))
    assert r.relation == "extended" and r.size_b == 601 and r.merges_jaccard == 1.0
    assert r.same_id_fraction == pytest.approx(500 / 501)
    r = compare_vocabs(va, load_vocab(other))
    assert r.relation == "unrelated" and r.shared == 0


def test_tokenizer_shift_and_vocab_txt(tmp_path: Path) -> None:
    base = byte_tokens(300)
    a = write_json(tmp_path / "a.json", bpe_tokenizer(base, []))
    shifted = write_json(tmp_path / "b.json", bpe_tokenizer(["<pad>", "<unk>", *base], []))
    r = compare_vocabs(load_vocab(a), load_vocab(shifted))
    assert r.dominant_shift == 2 and r.dominant_shift_fraction == 1.0
    assert r.same_id_fraction == 0 and r.relation == "extended"
    txt = tmp_path / "vocab.txt"
    txt.write_text("\n".join(["<pad>", "<unk>", *base]) + "\n", encoding="utf-8")
    r = compare_vocabs(load_vocab(txt), load_vocab(shifted))
    assert r.kind_a.startswith("WordPiece") and r.relation == "same"


def test_tools_through_registry(tmp_path: Path) -> None:
    ctx = ToolContext(roots=[tmp_path])
    cfg = write_json(tmp_path / "m/config.json", find("GLM-4.5-Air").config)
    d = run_tool("arch.describe", {"path": str(cfg.parent)}, ctx)
    assert d.nearest[0].name == "GLM-4.5-Air"  # type: ignore[attr-defined]
    assert d.manifest.inputs[0].path == str(cfg)  # type: ignore[attr-defined]
    assert "glm4_moe" in d.to_markdown()  # type: ignore[attr-defined]
    p = run_tool("arch.params", {"path": str(cfg)}, ctx)
    dumped = json.loads(p.model_dump_json())
    assert {
        "total",
        "active",
        "total_excluding_input_embedding",
        "active_excluding_input_embedding",
        "family",
    } <= dumped.keys()
    assert "GLM-4.5-Air" in (dumped["published"] or "")
    diff = run_tool("arch.diff", {"a": str(cfg), "b": "catalog:Solar-Open-100B"}, ctx)
    assert "first_k_dense_replace 1 vs 0" in diff.to_markdown()  # type: ignore[attr-defined]
    near = run_tool("arch.nearest", {"path": str(cfg), "k": "2"}, ctx)
    assert len(near.neighbours) == 2  # type: ignore[attr-defined]


@pytest.mark.skipif(not FIXTURES.exists(), reason="no shared fixtures")
def test_cli_params_json() -> None:
    from helpers.rawlsp import run_cli

    out = run_cli("arch", "params", "--json", str(FIXTURES / "openai__gpt-oss-120b.json"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["family"] == "gpt_oss" and data["active_excluding_input_embedding"] == 5_132_849_472
    bad = run_cli("arch", "describe", str(FIXTURES))
    assert bad.returncode == 2 and "Next step" in bad.stderr


def test_fast_and_tolerant_parsers_agree() -> None:
    """Strict JSON takes the fast path; its spans must equal the tolerant parser's."""
    from companion.architecture.jsonc import _Parser

    cfg = {
        **find("gpt-oss-120b").config,
        "rope_scaling": {"factor": 2.0, "rope_type": "yarn"},
        "id2label": {str(i): f"L{i}" for i in range(2000)},
        "é": ["x", {"y": 1}],
    }
    text = json.dumps(cfg, indent=1)
    fast, slow = parse(text), _Parser(text).value(0)
    assert fast.root is not None and slow is not None
    assert to_python(fast.root) == to_python(slow) == cfg

    def spans(node: object) -> list[tuple[str, int, int, int, int]]:
        out = []
        for m in getattr(node, "members", []):
            if m.key != "id2label":  # kept whole by the fast path (large container)
                out.append((m.key, m.key_start, m.key_end, m.value.start, m.value.end))
                out += spans(m.value)
        return out

    assert spans(fast.root) == spans(slow)
    assert [m.key for m in fast.path_at(text.index('"rope_type"') + 2)] == [
        "rope_scaling",
        "rope_type",
    ]
