"""The Markdown escaping helpers: hostile text stays one inert run; ordinary names stay as typed."""

from __future__ import annotations

import pytest
from helpers.markdown import HOSTILE, active, headings, rendered, table_rows, text, tokens

from companion.mdtext import LIMIT, code, inline

NAMES = [
    "model.layers.0.mlp.down_proj.weight",
    "LlamaForCausalLM",
    "tie_word_embeddings",
    "Qwen__Qwen3-30B-A3B",
    "blk.0.attn_q.weight",
    "/models/run-1/config.json",
    "gpt_oss",
    "-0.5",
    "1.5",
    "loss/train",
    "--vocab-size",
]


@pytest.mark.parametrize("name", NAMES)
def test_ordinary_names_are_unchanged(name: str) -> None:
    assert inline(name) == name
    assert code(name) == f"`{name}`"


def test_hostile_inline_text_is_one_inert_cell() -> None:
    md = f"| a | b |\n|---|---|\n| {inline(HOSTILE)} | x |\n"
    assert active(md) == [] and headings(md) == []
    assert table_rows(md) == [["a", "b"], [rendered(HOSTILE), "x"]]


@pytest.mark.parametrize(
    "value", ["# title", "- item", "+ item", "1. first", "2) second", "===", "---", "> quote"]
)
def test_a_value_at_the_start_of_a_line_opens_no_block(value: str) -> None:
    md = f"before\n\n{inline(value)}\n"
    blocks = [t.type for t in tokens(md) if t.block and t.nesting == 1]
    assert blocks == ["paragraph_open", "paragraph_open"]
    last = [t for t in tokens(md) if t.type == "inline"][-1]
    assert text(last) == value


@pytest.mark.parametrize("value", ["a`b", "``x``", "`", "a | b", HOSTILE, " x", "x "])
def test_code_span_holds_any_backtick_run(value: str) -> None:
    spans = [t for t in tokens(f"see {code(value)} here") if t.type == "code_inline"]
    assert [s.content for s in spans] == [rendered(value)]
    cell = f"| a |\n|---|\n| {code(value, cell=True)} |\n"
    assert table_rows(cell) == [["a"], [rendered(value)]]


def test_control_characters_become_visible() -> None:
    assert inline("a\tb\x00c\u202ed") == "a\\\\tb\\\\x00c\\\\u202ed"


def test_long_values_are_clipped_with_an_ellipsis() -> None:
    out = inline("x" * 10_000)
    assert len(out) == LIMIT and out.endswith("…")
    assert len(code("`" * 5000)) <= 3 * LIMIT + 2  # clipped first, then fenced
