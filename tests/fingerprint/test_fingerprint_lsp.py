"""The real server: a config.json beside a checkpoint gets a "likely parent" lens."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import pytest
from helpers.lsp import client_fixture
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from companion.audit import synth
from companion.fingerprint import zoo
from companion.settings import Settings
from companion.toolbox import context

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(tempfile.mkdtemp(prefix="companion-parent-lens-"))
ENV = {**os.environ, "COMPANION_HOME": str(ROOT / "home")}


@pytest.fixture(scope="module")
def workspace() -> Path:
    """A store holding a base and 10 unrelated models; a disguised derivative to open."""
    spec = synth.Spec(layers=2)
    w = synth.base(spec, seed=0)
    paths = [synth.save(ROOT / "known/base", w, spec)]
    paths += [synth.save(ROOT / f"known/u{s}", synth.base(spec, 50 + s), spec) for s in range(10)]
    synth.save(ROOT / "upload", zoo.quantized(zoo.hidden_permuted(w, spec)), spec)
    ctx = context(Settings(home=ROOT / "home"), [ROOT])
    ctx.run("fingerprint.compute", {"paths": [str(p) for p in paths]})
    return ROOT


REFRESHES: list[None] = []


def answer_refresh(client: LanguageClient) -> None:
    """Answer the server's workspace/codeLens/refresh (and count it)."""

    @client.feature(lsp.WORKSPACE_CODE_LENS_REFRESH)
    def refresh(_: None) -> None:
        REFRESHES.append(None)


client = client_fixture(
    setup=answer_refresh,
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "companion", "serve"], server_env=ENV
    ),
)


async def test_config_lens_names_the_likely_parent(client: LanguageClient, workspace: Path) -> None:
    path = workspace / "upload/config.json"
    uri = path.as_uri()
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "json", 1, path.read_text()))
    )
    titles: list[str] = []
    for _ in range(200):  # the first answer comes while identify runs in the background
        lenses = await client.text_document_code_lens_async(
            lsp.CodeLensParams(lsp.TextDocumentIdentifier(uri))
        )
        titles = [lens.command.title for lens in lenses if lens.command]
        if any(t.startswith("likely parent") for t in titles):
            break
        await asyncio.sleep(0.1)
    assert any(t.startswith("likely parent: base (p = ") for t in titles), titles
    assert REFRESHES  # the server asked the client to re-request its lenses
