"""Total bounds on LLM I/O, against a loopback endpoint that misbehaves on purpose: endless
and huge answers, a discovery probe that never ends, floods of tool calls, long Retry-After,
streams that fail after a 200, and a context window the endpoint does not report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.chat_engine import ask, settings_for
from helpers.openai_server import OpenAIServer, ToolCall, Turn

from companion.errors import EndpointError
from companion.llm import endpoint as endpoint_mod


@pytest.fixture(autouse=True)
def _fresh_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPANION_TEST_KEY", "sk-bounds-test")
    endpoint_mod.DISCOVERED.reset()


# -- answer size and duration -----------------------------------------------------------------


async def test_endless_stream_stops_at_the_character_cap() -> None:
    with OpenAIServer([Turn(chunks=["forever "], endless=True)]) as srv:
        settings = settings_for(srv, llm_max_answer_chars=2000, chat_max_tool_rounds=0)
        result, deltas, _ = await ask(srv, settings=settings)
        assert srv.wait_disconnect(timeout=10)
    assert len(result.text) == 2000 == len("".join(deltas))
    assert any("llm_max_answer_chars=2000" in n for n in result.notes)
    assert srv.completed == []  # we hung up; the endpoint never got to finish


async def test_endless_slow_stream_stops_at_the_duration_cap() -> None:
    with OpenAIServer([Turn(chunks=["tick "], endless=True, delay=0.02)]) as srv:
        settings = settings_for(srv, llm_max_answer_s=0.5, chat_max_tool_rounds=0)
        result, _, _ = await ask(srv, settings=settings)
        assert srv.wait_disconnect(timeout=10)
    assert result.text.startswith("tick ")
    assert any("llm_max_answer_s=0.5" in n for n in result.notes)


async def test_a_50_mb_answer_is_never_taken_whole() -> None:
    many = Turn(chunks=["x" * 65536], endless=True)  # 50 MB and more, in 64 KB chunks
    one_line = Turn(text="y" * (50 * 1024 * 1024), chunks=1)  # one 50 MB SSE line
    with OpenAIServer([many, one_line]) as srv:
        settings = settings_for(srv, llm_max_answer_chars=10_000, llm_max_retries=0)
        result, _, _ = await ask(srv, settings=settings)
        with pytest.raises(EndpointError, match=r"sent more than 1048576 bytes") as info:
            await ask(srv, settings=settings)
        assert srv.wait_disconnect(timeout=10)
        sent = dict(srv.sent_bytes)
    assert len(result.text) == 10_000
    assert sum(sent.values()) < 50 * 1024 * 1024
    assert "llm_max_answer_chars" in info.value.text


# -- discovery ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["trickle", "hang"])
async def test_a_discovery_probe_that_never_ends_does_not_hang_chat(fault: str) -> None:
    with OpenAIServer([Turn(text="answered anyway")], discovery=fault) as srv:
        settings = settings_for(srv, llm_discovery_timeout_s=0.5, llm_context_length=6000)
        result, _, _ = await ask(srv, settings=settings)
    assert result.text == "answered anyway" and result.context_length == 6000
    assert any("not discovered" in n and "0.5 s" in n for n in result.notes)


# -- tool calls --------------------------------------------------------------------------------


async def test_a_flood_of_tool_calls_runs_only_the_per_round_cap(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    scan = json.dumps({"paths": [str(tmp_path)]})
    flood = Turn(tool_calls=[ToolCall("workspace_scan", scan, id=f"c{i}") for i in range(100)])
    with OpenAIServer([flood, Turn(text="Done.")]) as srv:
        settings = settings_for(srv, chat_max_tool_calls_per_round=5, llm_context_length=16384)
        result, _, statuses = await ask(srv, settings=settings, roots=[tmp_path])
        second = srv.chat_requests()[1].body["messages"]
    assert len(result.tool_calls) == 5 == len(statuses) and result.text == "Done."
    assert [m["tool_call_id"] for m in second if m["role"] == "tool"] == [f"c{i}" for i in range(5)]
    assert len(second[-6]["tool_calls"]) == 5  # only the calls that ran are echoed back
    note = next(n for n in result.notes if "100 tool calls" in n)
    assert "chat_max_tool_calls_per_round=5" in note
    assert not any("shorten the question" in n for n in result.notes)


async def test_tool_calls_are_capped_per_turn(tmp_path: Path) -> None:
    calls = [ToolCall("workspace_scan", json.dumps({"paths": [str(tmp_path)]})) for _ in range(3)]
    with OpenAIServer([Turn(tool_calls=calls)]) as srv:  # asks for 3 more, forever
        settings = settings_for(
            srv, chat_max_tool_calls_per_round=3, chat_max_tool_calls_per_turn=5
        )
        result, _, _ = await ask(srv, settings=settings, roots=[tmp_path])
        requests = srv.chat_requests()
    assert len(result.tool_calls) == 5 and len(requests) == 3
    assert "tools" in requests[1].body and "tools" not in requests[2].body
    assert any("chat_max_tool_calls_per_turn=5" in n for n in result.notes)


async def test_tool_results_that_overflow_the_window_are_cut_not_blamed_on_the_user(
    tmp_path: Path,
) -> None:
    for i in range(60):
        (tmp_path / f"m{i:02d}").mkdir()
        (tmp_path / f"m{i:02d}" / "config.json").write_text('{"model_type": "llama"}')
    calls = [ToolCall("workspace_scan", json.dumps({"paths": [str(tmp_path)]})) for _ in range(8)]
    with OpenAIServer([Turn(tool_calls=calls), Turn(text="Sixty configs.")]) as srv:
        settings = settings_for(
            srv, llm_context_length=8192, chat_tool_output_chars=20_000, llm_max_output_tokens=512
        )
        result, _, _ = await ask(srv, settings=settings, roots=[tmp_path])
    assert result.text == "Sixty configs." and len(result.tool_calls) == 8
    assert any("Tool results were cut" in n for n in result.notes)


# -- retries -----------------------------------------------------------------------------------


async def test_a_429_asking_for_an_hour_is_not_retried_and_says_so() -> None:
    with OpenAIServer([Turn(status=429, retry_after=3600)]) as srv:
        settings = settings_for(srv, llm_max_retries=2)
        with pytest.raises(EndpointError) as info:
            await ask(srv, settings=settings)
        tries = len(srv.chat_requests())
    assert tries == 1
    assert "the endpoint asked to wait 3600 s; not retrying (1 try)" in info.value.text


async def test_retry_counts_are_true() -> None:
    with OpenAIServer([Turn(status=503, retry_after=0.05)]) as srv:
        with pytest.raises(EndpointError, match=r"HTTP 503 after 3 tries"):
            await ask(srv, settings=settings_for(srv, llm_max_retries=2))
        assert len(srv.chat_requests()) == 3


# -- a stream that began with 200 and then failed ------------------------------------------------


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        (
            Turn(text="Half an ans", stream_error="out of memory"),
            "error in the middle.*out of memory",
        ),
        (Turn(text="Half an ans", end_early=True), "without finishing it"),
    ],
)
async def test_a_stream_that_fails_after_200_is_an_error_not_an_answer(
    turn: Turn, expected: str
) -> None:
    with OpenAIServer([turn]) as srv:
        with pytest.raises(EndpointError, match=expected) as info:
            await ask(srv, settings=settings_for(srv, llm_max_retries=2))
        assert len(srv.chat_requests()) == 1  # text reached the user: never retried
    assert "after 11 characters" in info.value.text and "Next step" in info.value.text


async def test_a_stream_that_fails_before_any_text_is_retried_honestly() -> None:
    script = [Turn(end_early=True), Turn(stream_error="busy"), Turn(text="third time")]
    with OpenAIServer(script) as srv:
        result, _, _ = await ask(srv, settings=settings_for(srv, llm_max_retries=2))
        assert len(srv.chat_requests()) == 3
    assert result.text == "third time"
    with (
        OpenAIServer([Turn(end_early=True)]) as srv,
        pytest.raises(EndpointError, match=r"dropped the connection mid-answer \(2 tries\)"),
    ):
        await ask(srv, settings=settings_for(srv, llm_max_retries=1))


# -- a context window the endpoint does not report ---------------------------------------------


def big_log(path: Path, steps: int = 3000) -> Path:
    """A training log far larger than a small context window."""
    lines = [
        f"step {s} loss {12.2 - s / 400:.4f} lr 3.0e-4 grad_norm 1.{s % 97:02d}"
        for s in range(steps)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_context_length_exceeded_shrinks_the_prompt_and_retries_once(
    tmp_path: Path,
) -> None:
    from companion.llm import DocumentContext

    log = big_log(tmp_path / "train.log")
    with OpenAIServer([Turn(text="The first loss is about ln V.")], context_window=3000) as srv:
        settings = settings_for(srv, llm_context_length=8192, chat_max_tool_rounds=0)
        ctx = DocumentContext(uri=log.as_uri())
        result, _, _ = await ask(srv, settings=settings, roots=[tmp_path], context=ctx)
        first, second = (r.body for r in srv.chat_requests())
        again, _, _ = await ask(srv, settings=settings, roots=[tmp_path], context=ctx)
        third = srv.chat_requests()[2].body
    assert result.text == "The first loss is about ln V." and result.context_length == 3000
    note = next(n for n in result.notes if "refused" in n)
    assert "3000 tokens" in note and "shrunk" in note
    sizes = [len(json.dumps(b["messages"])) for b in (first, second, third)]
    assert sizes[1] < sizes[0] and sizes[2] < sizes[0]
    assert "step 0 loss" in second["messages"][0]["content"]  # still grounded in the log
    assert len(srv.chat_requests()) == 3  # the learned window is kept: no refusal the 2nd time
    assert again.text == result.text


async def test_an_overflow_that_empties_the_stream_is_diagnosed_and_shrunk(tmp_path: Path) -> None:
    """llama-cpp-python answers a too-long streamed prompt with 200 and an empty stream."""
    from companion.llm import DocumentContext

    log = big_log(tmp_path / "train.log")
    srv = OpenAIServer([Turn(text="Grounded.")], context_window=3000, silent_stream_overflow=True)
    with srv:
        settings = settings_for(srv, llm_context_length=8192, chat_max_tool_rounds=0)
        ctx = DocumentContext(uri=log.as_uri())
        result, _, _ = await ask(srv, settings=settings, roots=[tmp_path], context=ctx)
        streamed = [r.body.get("stream", False) for r in srv.chat_requests()]
    # empty stream -> asked again without streaming -> 400 with the window -> shrunk, streamed
    assert streamed == [True, False, True]
    assert result.text == "Grounded." and result.context_length == 3000
    assert any("shrunk" in n for n in result.notes)


async def test_a_window_too_small_even_after_shrinking_is_a_clear_error(tmp_path: Path) -> None:
    from companion.llm import DocumentContext

    log = big_log(tmp_path / "train.log")
    with OpenAIServer([Turn(text="never")], context_window=700) as srv:
        settings = settings_for(srv, llm_context_length=8192, chat_max_tool_rounds=0)
        ctx = DocumentContext(uri=log.as_uri())
        with pytest.raises(EndpointError, match="context window of 700 tokens") as info:
            await ask(srv, settings=settings, roots=[tmp_path], context=ctx)
        assert len(srv.chat_requests()) <= 2  # never more than one shrunk retry
    assert "llm_context_length to 700" in info.value.text


def run_chat_cli(srv: OpenAIServer, tmp_path: Path, *args: str, **env: Any) -> Any:
    """`companion chat ...` against the loopback endpoint."""
    from helpers.rawlsp import run_cli

    values = {
        "COMPANION_HOME": str(tmp_path / "home"),
        "COMPANION_LLM_BASE_URL": srv.base_url,
        "COMPANION_LLM_MODEL": "test-model",
        "COMPANION_LLM_MAX_RETRIES": "0",
        **env,
    }
    return run_cli("chat", *args, env=values)


def test_cli_stream_error_exits_2_never_an_empty_answer(tmp_path: Path) -> None:
    with OpenAIServer([Turn(stream_error="llama_decode failed")]) as srv:
        out = run_chat_cli(srv, tmp_path, "what was the first loss?")
    assert out.returncode == 2, out.stderr
    assert "error in the middle of its answer" in out.stderr and "llama_decode" in out.stderr
    assert out.stdout.strip() == ""


def test_cli_big_log_over_a_small_window_answers_after_the_shrink(tmp_path: Path) -> None:
    log = big_log(tmp_path / "train.log")
    with OpenAIServer([Turn(text="Loss starts near 12.2.")], context_window=3000) as srv:
        ok = run_chat_cli(srv, tmp_path, "first loss?", "--file", str(log))
    with OpenAIServer([Turn(text="never")], context_window=700) as srv:
        failed = run_chat_cli(srv, tmp_path, "first loss?", "--file", str(log))
    assert ok.returncode == 0 and "Loss starts near 12.2." in ok.stdout
    assert "shrunk" in ok.stderr
    assert failed.returncode == 2 and "context window of 700 tokens" in failed.stderr


def test_cli_rejects_a_key_variable_that_is_not_a_key(tmp_path: Path) -> None:
    with OpenAIServer([Turn(text="never")]) as srv:
        out = run_chat_cli(srv, tmp_path, "hi", COMPANION_LLM_API_KEY_ENV="PATH")
        assert srv.chat_requests() == []
    assert out.returncode == 2 and "llm_api_key_env" in out.stderr and "_API_KEY" in out.stderr
