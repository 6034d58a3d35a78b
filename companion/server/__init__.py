"""Assemble the language server from its feature modules (one per LSP feature)."""

from __future__ import annotations

import importlib

from companion.server.core import CompanionServer

# Each module exposes `register(server)`. Engines add their feature modules here.
FEATURES: tuple[str, ...] = (
    "companion.server.lifecycle",
    "companion.server.commands",
    "companion.server.documents",
    "companion.server.chat",
)


def build_server() -> CompanionServer:
    """Create a server with every feature registered."""
    server = CompanionServer()
    for name in FEATURES:
        importlib.import_module(name).register(server)
    return server
