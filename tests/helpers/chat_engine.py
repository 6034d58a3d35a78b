"""Chat-engine test helpers: settings aimed at a loopback endpoint, and one turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from companion.llm import ChatRequest, ChatService
from companion.settings import Settings
from helpers.openai_server import OpenAIServer


def settings_for(srv: OpenAIServer, **more: Any) -> Settings:
    """Settings pointing at the local server (store off unless asked)."""
    values: dict[str, Any] = {
        "llm_base_url": srv.base_url,
        "llm_model": "test-model",
        "llm_api_key_env": "COMPANION_TEST_KEY",
        "llm_timeout_s": 5.0,
        "llm_max_retries": 1,
        "store_enabled": False,
    }
    values.update(more)
    return Settings(**values)


async def ask(
    srv: OpenAIServer,
    message: str = "Was Solar derived from GLM?",
    roots: list[Path] | None = None,
    service: ChatService | None = None,
    **kw: Any,
) -> tuple[Any, list[str], list[str]]:
    """One chat turn; returns (result, deltas, statuses)."""
    deltas: list[str] = []
    statuses: list[str] = []
    settings = kw.pop("settings", None) or settings_for(srv)
    own = service is None
    service = service or ChatService()
    try:
        result = await service.chat(
            ChatRequest(message=message, **kw), settings, roots or [], deltas.append,
            statuses.append,
        )  # fmt: skip
    finally:
        if own:
            await service.close()
    return result, deltas, statuses
