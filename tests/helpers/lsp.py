"""Helpers for driving `companion serve` through pytest-lsp."""

from __future__ import annotations

import os
import sys
from typing import Any

from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

SERVER_COMMAND = [sys.executable, "-m", "companion", "serve"]
CLIENTS = ("visual-studio-code", "neovim@v0.7.0", "emacs")


def server_config(env: dict[str, str] | None = None) -> ClientServerConfig:
    """A pytest-lsp config that starts the real server as a subprocess."""
    return ClientServerConfig(
        server_command=SERVER_COMMAND, server_env={**os.environ, **(env or {})}
    )


def fix_code_action_decoding(client: LanguageClient) -> None:
    """lsprotocol decodes CodeAction-with-command as Command on the client; prefer CodeAction."""
    converter = client.protocol._converter

    def structure(obj: Any, _: Any) -> lsp.CodeAction | lsp.Command:
        if isinstance(obj, dict) and "title" in obj and isinstance(obj.get("command"), str):
            return converter.structure(obj, lsp.Command)  # type: ignore[no-any-return]
        return converter.structure(obj, lsp.CodeAction)  # type: ignore[no-any-return]

    converter.register_structure_hook(lsp.Command | lsp.CodeAction, structure)
    converter.register_structure_hook(lsp.CodeAction | lsp.Command, structure)
