"""Assemble the language server from its feature modules (one per LSP feature)."""

from __future__ import annotations

from companion.server import chat, chat_file, commands, documents, lifecycle
from companion.server.core import CompanionServer

# Each feature module exposes `register(server)`.
FEATURES = (lifecycle, commands, documents, chat, chat_file)


def build_server() -> CompanionServer:
    """Create a server with every feature registered."""
    server = CompanionServer()
    for feature in FEATURES:
        feature.register(server)
    return server
