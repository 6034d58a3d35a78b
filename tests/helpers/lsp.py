"""Helpers for driving `companion serve` through pytest-lsp: one client fixture factory."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pygls.exceptions import FeatureAlreadyRegisteredError
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SERVER_COMMAND = [sys.executable, "-m", "companion", "serve"]
CLIENTS = ("visual-studio-code", "neovim@v0.7.0", "emacs")

Options = Callable[[pytest.FixtureRequest], object]
Setup = Callable[[LanguageClient], None]
Check = Callable[[LanguageClient, lsp.InitializeResult], None]


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


def client_fixture(
    *,
    config: ClientServerConfig | None = None,
    editor: str = "visual-studio-code",
    editors: Sequence[str] | None = None,
    options: Options | None = None,
    code_actions: bool = False,
    setup: Setup | None = None,
    check: Check | None = None,
) -> Any:
    """A module-scoped client of the real server, initialized on the module's `workspace`.

    `editor` names the recorded capabilities (or `editors`, one module run per editor);
    `options(request)` gives initializationOptions; `code_actions` decodes CodeActions as
    such; `setup(client)` runs before initialize and `check(client, result)` after it.
    """

    async def client(
        lsp_client: LanguageClient, request: pytest.FixtureRequest
    ) -> AsyncIterator[None]:
        if code_actions:
            fix_code_action_decoding(lsp_client)
        if setup is not None:
            setup(lsp_client)
        answer_lens_refresh(lsp_client)
        root: Path = request.getfixturevalue("workspace")
        params = lsp.InitializeParams(
            capabilities=client_capabilities(request.param if editors else editor),
            root_uri=root.as_uri(),
            workspace_folders=[lsp.WorkspaceFolder(uri=root.as_uri(), name="ws")],
            initialization_options=None if options is None else options(request),
        )
        result = await lsp_client.initialize_session(params)
        if check is not None:
            check(lsp_client, result)
        yield
        await lsp_client.shutdown_session()

    more = {"params": list(editors)} if editors else {}
    return pytest_lsp.fixture(config=config or server_config(), scope="module", **more)(client)


def answer_lens_refresh(client: LanguageClient) -> None:
    """Answer workspace/codeLens/refresh as the recorded editors do (they advertise it).

    The server sends it when a background lens (the likely parent) is ready; pytest-lsp's
    client does not implement it by itself.
    """

    try:

        @client.feature(lsp.WORKSPACE_CODE_LENS_REFRESH)
        def refresh(ls: LanguageClient, params: None) -> None:
            return None

    except FeatureAlreadyRegisteredError:  # the test module answers it itself (and counts)
        pass
