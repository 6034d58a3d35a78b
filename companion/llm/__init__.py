"""LLM chat engine: OpenAI-compatible client, token budget, context assembly, tool loop.

Pure: never imports pygls or lsprotocol. The server (companion/server/chat.py) and the CLI
(companion/chat_cli.py) adapt it.
"""

from __future__ import annotations

from companion.llm.context import DocumentContext
from companion.llm.endpoint import Endpoint, resolve_endpoint
from companion.llm.loop import ChatRequest, ChatService
from companion.llm.schemas import ChatResult, ToolCallRecord, Usage

__all__ = [
    "ChatRequest",
    "ChatResult",
    "ChatService",
    "DocumentContext",
    "Endpoint",
    "ToolCallRecord",
    "Usage",
    "resolve_endpoint",
]
