"""CLI commands that are not plain registry tools (streaming chat, verify, export...).

Each module in EXTRA_COMMAND_MODULES exposes `add_parser(subparsers)`, which adds its
subcommand and sets `_extra=<callable(namespace) -> exit code>` as a default.
"""

from __future__ import annotations

import importlib
from typing import Any

EXTRA_COMMAND_MODULES: tuple[str, ...] = ("companion.chat_cli",)


def add_extra_commands(sub: Any) -> None:
    """Add every extra subcommand."""
    for name in EXTRA_COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
