"""Investigate against… on a config.json: progress, the markdown dossier, the HTML outside."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from helpers.lsp import fix_code_action_decoding, server_config
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient, client_capabilities

from companion.audit import synth

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base model and its fine-tune, each a folder with config.json and weights."""
    root = tmp_path_factory.mktemp("casews")
    synth.family(root)
    return root


@pytest_lsp.fixture(config=server_config(), scope="module")
async def client(lsp_client: LanguageClient, workspace: Path):
    """A VS Code-capabilities client (pytest-lsp records window/showDocument requests)."""
    fix_code_action_decoding(lsp_client)

    params = lsp.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=workspace.as_uri(),
        workspace_folders=[lsp.WorkspaceFolder(uri=workspace.as_uri(), name="ws")],
    )
    await lsp_client.initialize_session(params)
    yield
    await lsp_client.shutdown_session()


async def test_investigate_against_opens_the_dossier(
    client: LanguageClient, workspace: Path
) -> None:
    config = workspace / "finetune/config.json"
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(config.as_uri(), "json", 1, config.read_text())
        )
    )
    whole = lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(config.as_uri()), whole, lsp.CodeActionContext([])
        )
    )
    by_title = {a.title: a for a in actions if isinstance(a, lsp.CodeAction)}
    assert "Investigate against… base" in by_title
    assert any(t.startswith("Audit weights against…") for t in by_title)  # next to it
    cmd = by_title["Investigate against… base"].command
    assert cmd is not None and cmd.command == "companion.show"
    spec: dict[str, Any] = cmd.arguments[0]  # type: ignore[index]
    assert spec["args"]["a"] == str(workspace / "base")
    before = set(client.progress_reports)
    result = await asyncio.wait_for(
        client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command=cmd.command, arguments=cmd.arguments)
        ),
        120,
    )
    assert result["result"]["verdict"] == "derived"
    md = Path(result["uri"].removeprefix("file://")).read_text(encoding="utf-8")
    assert "Verdict: derived" in md and "Chain of reasoning" in md
    titles = [
        r.title
        for token, reports in client.progress_reports.items()
        if token not in before
        for r in reports
        if isinstance(r, lsp.WorkDoneProgressBegin)
    ]
    assert any("case.investigate" in t for t in titles), titles
    shown = client.shown_documents
    for _ in range(100):
        if any(p.external for p in shown):
            break
        await asyncio.sleep(0.05)
    external = [p for p in shown if p.external]
    assert external and external[0].uri.endswith("dossier-vs-base.html")
    assert Path(external[0].uri.removeprefix("file://")).is_file()
