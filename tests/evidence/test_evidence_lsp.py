"""The real server on training logs: diagnostics, the ln V hover and the summary action."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers.evidence_runs import LN_V, scratch_run, write_config
from helpers.lsp import client_fixture
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from companion.evidence import writers

pytestmark = pytest.mark.asyncio(loop_scope="module")
TITLE = "Summarize verification evidence"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Megatron log with one garbage line and one NaN, config.json beside; an LFS pointer."""
    root = tmp_path_factory.mktemp("evws")
    run_dir = root / "run"
    run_dir.mkdir()
    log = run_dir / "train.log"
    writers.megatron(scratch_run(), log)
    lines = log.read_text().splitlines()
    lines[12] = lines[12].split("lm loss:")[0] + "lm loss: nan |"
    lines.insert(20, " iteration 18/ 60 | lm loss: ##garbage## |")
    log.write_text("\n".join(lines) + "\n")
    write_config(run_dir)
    (root / "pointer.log").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "b" * 64 + "\nsize 9999\n"
    )
    return root


client = client_fixture(code_actions=True)  # one VS Code-like client for the module


def open_doc(client: LanguageClient, path: Path) -> str:
    """didOpen a file with its disk text."""
    uri = path.as_uri()
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri=uri, language_id="log", version=1, text=path.read_text())
        )
    )
    return uri


async def diagnostics(client: LanguageClient, uri: str, code: str) -> list[lsp.Diagnostic]:
    """Wait (bounded) for diagnostics with a given code."""
    for _ in range(200):
        found = client.diagnostics.get(uri) or []
        if any(d.code == code for d in found):
            return list(found)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {code} diagnostics: {client.diagnostics.get(uri)}")


async def test_diagnostics_hover_and_summary_action(
    client: LanguageClient, workspace: Path
) -> None:
    log = workspace / "run" / "train.log"
    uri = open_doc(client, log)
    diags = await diagnostics(client, uri, "unparseable")
    by_code = {d.code: d for d in diags}
    assert by_code["unparseable"].range.start.line == 20
    assert "1 in this file" in by_code["unparseable"].message
    assert by_code["nonfinite-loss"].range.start.line == 12

    first_line = next(i for i, t in enumerate(log.read_text().splitlines()) if "lm loss:" in t)
    hover = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(uri), lsp.Position(first_line, 5))
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert f"**ln V** = {LN_V:.4f}" in hover.contents.value and "V = 256" in hover.contents.value
    assert f"{scratch_run().loss[0]:.4f}" in hover.contents.value
    other = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(uri), lsp.Position(first_line + 3, 5))
    )
    assert other is None

    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(uri),
            lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)),
            lsp.CodeActionContext(diagnostics=[]),
        )
    )
    action = next(a for a in actions or [] if isinstance(a, lsp.CodeAction) and a.title == TITLE)
    assert action.command is not None and action.command.command == "companion.show"
    result = await asyncio.wait_for(
        client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="companion.show", arguments=action.command.arguments)
        ),
        60,
    )
    summary = result["result"]
    assert summary["verdict"] == "from_scratch" and summary["format"] == "megatron"
    assert summary["parse"]["unparseable"] == 1 and summary["parse"]["nonfinite"] == 1
    png = Path(summary["plot_png"])
    assert png.is_file() and png.with_suffix(".svg").is_file()
    md = Path(result["uri"].removeprefix("file://")).read_text()
    assert f"![loss curve with ln V]({png.as_uri()})" in md and "from_scratch" in md


async def test_lfs_pointer_diagnostic(client: LanguageClient, workspace: Path) -> None:
    uri = open_doc(client, workspace / "pointer.log")
    diags = await diagnostics(client, uri, "lfs-pointer")
    assert diags[0].severity == lsp.DiagnosticSeverity.Error
    assert "git lfs pull" in diags[0].message and "9999" in diags[0].message
