"""The real server on model configs: hover, code lens, diagnostics + quick fix, code actions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from helpers.archfiles import bpe_tokenizer, byte_tokens, write_json
from helpers.lsp import client_fixture
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from companion.toolbox import load_tools

pytestmark = pytest.mark.asyncio(loop_scope="module")

GOOD = {
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 100,
    "tie_word_embeddings": False,
}
BAD_TEXT = """{
  // typed by hand, JSONC
  "model_type": "lama",
  "hidden_size": 66,
  "num_attention_heads": 4,
  "num_key_value_heads": 3,
  "num_hidden_layers": "2",
  "intermediate_size": 128,
  "vocab_size": 100,
}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two model folders; `a` has a tokenizer with more ids than vocab_size and a checkpoint."""
    root = tmp_path_factory.mktemp("archws")
    write_json(root / "a/config.json", GOOD)
    write_json(root / "a/tokenizer.json", bpe_tokenizer(byte_tokens(120), []))
    (root / "a/model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    write_json(root / "b/config.json", {**GOOD, "num_hidden_layers": 3})
    (root / "b/model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (root / "c").mkdir()
    (root / "c/config.json").write_text(BAD_TEXT, encoding="utf-8")
    return root


def keep_commands(client: LanguageClient, result: lsp.InitializeResult) -> None:
    """Remember the server's commands on the client (some actions depend on them)."""
    client.commands = list(result.capabilities.execute_command_provider.commands)  # type: ignore[union-attr,attr-defined]


client = client_fixture(code_actions=True, check=keep_commands)  # one VS Code-like client


def open_doc(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    """didOpen a file (with its disk text unless given)."""
    uri = path.as_uri()
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(
                uri=uri,
                language_id="json",
                version=version,
                text=text if text is not None else path.read_text(),
            )
        )
    )
    return uri


async def diagnostics_for(
    client: LanguageClient, uri: str, want: str, tries: int = 100
) -> list[lsp.Diagnostic]:
    """Wait (bounded) until diagnostics for `uri` contain a code `want` (or '' for any)."""
    for _ in range(tries):
        found = client.diagnostics.get(uri)
        if found is not None and (not want or any(d.code == want for d in found)):
            return list(found)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {want!r} diagnostics for {uri}: {client.diagnostics.get(uri)}")


def pos_of(text: str, needle: str) -> lsp.Position:
    """Position just inside the first occurrence of `needle`."""
    off = text.index(needle) + 1
    line = text.count("\n", 0, off)
    return lsp.Position(line, off - (text.rfind("\n", 0, off) + 1))


async def test_hover_code_lens_and_vocab_diagnostic(
    client: LanguageClient, workspace: Path
) -> None:
    path = workspace / "a/config.json"
    text = path.read_text()
    uri = open_doc(client, path)
    hover = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(uri), pos_of(text, '"num_key_value_heads"'))
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert "grouped-query" in hover.contents.value and "4 query / 2 KV" in hover.contents.value
    lenses = await client.text_document_code_lens_async(
        lsp.CodeLensParams(lsp.TextDocumentIdentifier(uri))
    )
    titles = [lens.command.title for lens in lenses if lens.command]
    assert any(t.startswith("llama · ≈") and "active" in t for t in titles), titles
    assert any(t.startswith("nearest:") for t in titles), titles
    assert all(lens.range.start.line == 0 for lens in lenses)
    diags = await diagnostics_for(client, uri, "vocab-size")
    vocab = next(d for d in diags if d.code == "vocab-size")
    assert vocab.severity == lsp.DiagnosticSeverity.Error and "120" in vocab.message


async def test_problems_and_quick_fixes(client: LanguageClient, workspace: Path) -> None:
    path = workspace / "c/config.json"
    uri = open_doc(client, path)
    diags = await diagnostics_for(client, uri, "kv-heads")
    codes = {d.code for d in diags}
    assert {"head-dim", "kv-heads", "unknown-model-type", "wrong-type"} <= codes, codes
    assert "json-syntax" not in codes  # comments and trailing commas are JSONC, not errors
    typo = next(d for d in diags if d.code == "unknown-model-type")
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(uri), typo.range, lsp.CodeActionContext(diagnostics=[typo])
        )
    )
    fixes = [a for a in actions if isinstance(a, lsp.CodeAction) and a.kind == "quickfix"]
    fix = next(a for a in fixes if a.title == 'Change model_type to "llama"')
    assert fix.edit is not None and fix.edit.changes is not None
    (edit,) = fix.edit.changes[uri]
    assert edit.new_text == '"llama"' and edit.range == typo.range
    wrong = next(d for d in diags if d.code == "wrong-type")
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(uri), wrong.range, lsp.CodeActionContext(diagnostics=[wrong])
        )
    )
    assert any(
        isinstance(a, lsp.CodeAction) and a.title == "Write num_hidden_layers as 2" for a in actions
    )


async def test_code_actions_run_tools(client: LanguageClient, workspace: Path) -> None:
    path = workspace / "a/config.json"
    uri = path.as_uri()
    whole = lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(lsp.TextDocumentIdentifier(uri), whole, lsp.CodeActionContext([]))
    )
    by_title = {a.title: a for a in actions if isinstance(a, lsp.CodeAction)}
    titles = [a.title for a in actions]
    assert len(titles) == len(set(titles)), f"duplicate actions: {titles}"
    assert {"Count parameters", "Compare with known architectures"} <= by_title.keys()
    assert "Compare with… b/config.json" in by_title
    commands = client.commands  # type: ignore[attr-defined]
    assert ("Explain this architecture" in by_title) == ("companion.chat.explain" in commands)
    if "Explain this architecture" in by_title:
        cmd = by_title["Explain this architecture"].command
        assert cmd is not None and list(cmd.arguments or []) == [
            {"uri": uri, "kind": "architecture"}
        ]
    audit = [t for t in by_title if t.startswith("Audit weights against…")]
    audit_tool = load_tools().get("audit.compare")
    assert bool(audit) == (audit_tool is not None and len(audit_tool.positional) >= 2)
    if audit:
        assert audit == ["Audit weights against… b"]
        cmd = by_title[audit[0]].command
        assert cmd is not None and cmd.command == "companion.show"
        spec = cmd.arguments[0]  # type: ignore[index]
        assert spec["tool"] == "audit.compare"
        assert set(spec["args"].values()) == {str(workspace / "a"), str(workspace / "b")}
    compare = by_title["Compare with… b/config.json"].command
    assert compare is not None and compare.command == "companion.show"
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command=compare.command, arguments=compare.arguments)
    )
    md = Path(result["uri"].removeprefix("file://")).read_text()
    assert "A is deeper" not in md and "B is deeper: 2 vs 3 layers" in md
    count = by_title["Count parameters"].command
    assert count is not None
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command=count.command, arguments=count.arguments)
    )
    assert result["result"]["family"] == "llama" and result["result"]["total"] > 0


async def test_invalid_json_while_typing(client: LanguageClient, workspace: Path) -> None:
    path = workspace / "b/config.json"
    good = path.read_text()
    uri = open_doc(client, path)
    await diagnostics_for(client, uri, "")
    broken = good.replace('"vocab_size": 100', '"vocab_size": 1').rstrip().rstrip("}")
    broken = broken.replace('"hidden_size": 64,', '"hidden_size": 64 "oops": ,')
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
            [lsp.TextDocumentContentChangeWholeDocument(text=broken)],
        )
    )
    diags = await diagnostics_for(client, uri, "json-syntax")
    assert all(d.source == "companion" for d in diags)
    hover = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(uri), pos_of(broken, '"num_attention_heads"'))
    )
    assert hover is not None  # the partial tree still answers
    lenses = await client.text_document_code_lens_async(
        lsp.CodeLensParams(lsp.TextDocumentIdentifier(uri))
    )
    assert lenses
    for i, cut in enumerate((5, 1, 0)):  # keep typing garbage: the server stays up
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(uri=uri, version=3 + i),
                [lsp.TextDocumentContentChangeWholeDocument(text=broken[:cut])],
            )
        )
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=10),
            [lsp.TextDocumentContentChangeWholeDocument(text=json.dumps(GOOD))],
        )
    )
    for _ in range(100):
        found = client.diagnostics.get(uri) or []
        if not any(d.code == "json-syntax" for d in found):
            break
        await asyncio.sleep(0.05)
    assert not any(d.code == "json-syntax" for d in client.diagnostics.get(uri) or [])


async def actions_of(
    client: LanguageClient, uri: str, only: list[str] | None
) -> list[tuple[str | None, str]]:
    """(kind, title) of the code actions for the whole document under an `only` filter."""
    whole = lsp.Range(lsp.Position(0, 0), lsp.Position(100, 0))
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(uri), whole, lsp.CodeActionContext([], only=only)
        )
    )
    return [(a.kind, a.title) for a in actions or [] if isinstance(a, lsp.CodeAction)]


async def test_code_action_only_filter_is_honoured_both_ways(
    client: LanguageClient, workspace: Path
) -> None:
    """`only` admits a kind and its sub-kinds; never the parent kind, nor a mere name prefix."""
    good = open_doc(client, workspace / "a/config.json")
    typo = open_doc(client, workspace / "c/config.json")
    assert await actions_of(client, good, ["source.fixAll"]) == []
    assert any(kind == "quickfix" for kind, _ in await actions_of(client, typo, None))
    assert not any(kind == "quickfix" for kind, _ in await actions_of(client, typo, ["quick"]))
    fixes = await actions_of(client, typo, ["quickfix"])
    assert fixes and all(kind == "quickfix" for kind, _ in fixes)
    sources = await actions_of(client, good, ["source"])
    assert {"Count parameters", "Compare with known architectures"} <= {t for _, t in sources}
    assert all(kind == "source" for kind, _ in sources)
    refactors = await actions_of(client, good, ["refactor"])
    assert refactors == [("refactor", "Explain this architecture")]
