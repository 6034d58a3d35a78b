"""The editor's "Audit weights against a URL…" on a config.json: URLs come from the
workspace's `.companion/remotes.txt` and the config's `_name_or_path` (as hf://ORG/NAME);
the action runs the audit against the loopback hub (127.0.0.1) through the real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.hub_server import Hub, serve
from helpers.lsp import client_fixture
from helpers.remote_repos import HIDDEN, LAYERS, model, st_bytes
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from companion.audit.safetensors import write_safetensors

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "_name_or_path": "org/base",
    "hidden_size": HIDDEN,
    "intermediate_size": 512,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "vocab_size": 4096,
    "tie_word_embeddings": True,
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """org/base on the loopback hub."""
    tmp = tmp_path_factory.mktemp("hub")
    with serve(Hub(repos={"org/base": {"model.safetensors": st_bytes(model(1), tmp)}})) as h:
        yield h


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, hub: Hub) -> Path:
    """tuned/ (a fine-tune of org/base, with its config) and .companion/remotes.txt."""
    root = tmp_path_factory.mktemp("ws")
    (root / "tuned").mkdir()
    write_safetensors(root / "tuned/model.safetensors", model(2, model(1)))
    (root / "tuned/config.json").write_text(json.dumps(CONFIG, indent=2))
    (root / ".companion").mkdir()
    url = f"{hub.url}/org/base/resolve/main/model.safetensors"
    (root / ".companion/remotes.txt").write_text(f"# references\n{url}  # the base\n\nnot a url\n")
    return root


client = client_fixture(code_actions=True)


async def url_actions(client: LanguageClient, workspace: Path) -> dict[str, lsp.CodeAction]:
    """The config's "Audit weights against a URL…" actions by title."""
    uri = (workspace / "tuned/config.json").as_uri()
    whole = lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    only = lsp.CodeActionContext([], only=[lsp.CodeActionKind.Source])
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(lsp.TextDocumentIdentifier(uri), whole, only)
    )
    return {
        a.title: a
        for a in actions or []
        if isinstance(a, lsp.CodeAction) and a.title.startswith("Audit weights against a URL…")
    }


async def test_urls_come_from_remotes_txt_and_name_or_path(
    client: LanguageClient, workspace: Path, hub: Hub
) -> None:
    url = f"{hub.url}/org/base/resolve/main/model.safetensors"
    actions = await url_actions(client, workspace)
    assert list(actions) == [
        f"Audit weights against a URL… {url}",
        "Audit weights against a URL… hf://org/base",
    ]
    for target, action in zip([url, "hf://org/base"], actions.values(), strict=True):
        assert action.command is not None and action.command.command == "companion.show"
        spec = action.command.arguments[0]  # type: ignore[index]
        assert spec["tool"] == "audit.compare"
        assert spec["args"] == {  # A = the reference; only the cheap, telling roles
            "a": target,
            "b": str(workspace / "tuned"),
            "roles": ["norm", "attn"],
        }


async def test_the_url_action_audits_against_the_remote_weights(
    client: LanguageClient, workspace: Path, hub: Hub
) -> None:
    url = f"{hub.url}/org/base/resolve/main/model.safetensors"
    cmd = (await url_actions(client, workspace))[f"Audit weights against a URL… {url}"].command
    assert cmd is not None
    hub.sent = 0
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command=cmd.command, arguments=cmd.arguments)
    )
    assert result["result"]["verdict"] == "derived"
    remote = [i for i in result["result"]["manifest"]["inputs"] if i["sha256_from"] == "remote"]
    assert [i["path"] for i in remote] == [url] and remote[0]["ranges"]
    assert 0 < hub.sent < len(hub.repos["org/base"]["model.safetensors"])  # ranges, coalesced
    assert "derived" in Path(result["uri"].removeprefix("file://")).read_text().lower()
