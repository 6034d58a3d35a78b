"""`companion/chat` and chat-in-file through the real server, a real LSP client and a real
OpenAI-compatible endpoint on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.chat_client import ChatRecorder, chat, plain
from helpers.lsp import client_fixture, server_config
from helpers.openai_server import OpenAIServer, Turn
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")
KEY = "sk-lsp-test-key-42"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[OpenAIServer]:
    with OpenAIServer([Turn(text="ok")], model="test-model", max_model_len=16384) as srv:
        yield srv


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chatws")
    (root / "m").mkdir()
    (root / "m" / "config.json").write_text(
        json.dumps({"model_type": "llama", "num_hidden_layers": 2, "vocab_size": 32000})
    )
    return root


def llm_settings(srv: OpenAIServer, **more: object) -> dict[str, object]:
    return {
        "companion": {
            "llm": {
                "baseUrl": srv.base_url, "model": "test-model", "apiKeyEnv": "CHAT_TEST_KEY",
                "timeoutS": 5, "maxRetries": 1, **more,
            },
            "storeEnabled": False,
        }
    }  # fmt: skip


def record_chat(client: LanguageClient) -> None:
    """Record chat progress and requests on the client."""
    client.recorder = ChatRecorder(client)  # type: ignore[attr-defined]


client = client_fixture(
    config=server_config({"CHAT_TEST_KEY": KEY}),
    options=lambda request: llm_settings(request.getfixturevalue("endpoint")),
    code_actions=True,
    setup=record_chat,
)


def rec(client: LanguageClient) -> ChatRecorder:
    return client.recorder  # type: ignore[attr-defined, no-any-return]


async def test_chat_streams_deltas_on_the_work_done_token(
    client: LanguageClient, endpoint: OpenAIServer, workspace: Path
) -> None:
    endpoint.set_script([Turn(text="Inconclusive without a baseline.", chunks=4, usage=(40, 4))])
    before = len(endpoint.chat_requests())
    result = await chat(
        client,
        {
            "message": "Was it derived?",
            "workDoneToken": "tok-1",
            "context": {"uri": (workspace / "m" / "config.json").as_uri()},
        },
    )
    values = rec(client).progress["tok-1"]
    assert values[0]["kind"] == "begin" and values[0]["title"] == "companion chat"
    assert values[-1]["kind"] == "end"
    assert [v["delta"] for v in values if "delta" in v] == [
        "Inconclu", "sive wit", "hout a b", "aseline.",
    ]  # fmt: skip
    assert result["text"] == "Inconclusive without a baseline."
    assert result["usage"] == {
        "promptTokens": 40, "completionTokens": 4, "totalTokens": 44, "estimated": False,
    }  # fmt: skip
    assert result["toolCalls"] == [] and isinstance(result["conversationId"], str)
    assert result["contextLength"] == 16384
    system = endpoint.chat_requests()[before].body["messages"][0]["content"]
    assert '"vocab_size": 32000' in system  # the document is quoted


async def test_conversation_id_carries_history(client: LanguageClient, endpoint: OpenAIServer):
    endpoint.set_script([Turn(text="A1"), Turn(text="A2")])
    first = await chat(client, {"message": "Q1"})
    second = await chat(client, {"message": "Q2", "conversationId": first["conversationId"]})
    msgs = endpoint.chat_requests()[-1].body["messages"]
    assert second["conversationId"] == first["conversationId"]
    assert [m["content"] for m in msgs[1:]] == ["Q1", "A1", "Q2"]


async def test_cancel_closes_the_upstream_stream_and_the_server_survives(
    client: LanguageClient, endpoint: OpenAIServer
) -> None:
    endpoint.set_script([Turn(text="slow " * 200, chunks=200, delay=0.05), Turn(text="still here")])
    endpoint.disconnects.clear()
    future = asyncio.ensure_future(
        client.protocol.send_request_async(
            "companion/chat", {"message": "long", "workDoneToken": "tok-cancel"}, msg_id="cancel-me"
        )
    )
    for _ in range(500):
        if rec(client).deltas("tok-cancel"):
            break
        await asyncio.sleep(0.01)
    assert rec(client).deltas("tok-cancel")
    client.protocol.notify("$/cancelRequest", lsp.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(future, 10)
    assert info.value.code == -32800  # RequestCancelled
    assert await asyncio.to_thread(endpoint.wait_disconnect, 5.0)
    assert rec(client).progress["tok-cancel"][-1] == {"kind": "end", "message": "cancelled"}
    again = await chat(client, {"message": "are you alive?"})
    assert again["text"] == "still here"


async def test_endpoint_failure_is_an_error_response_and_the_server_survives(
    client: LanguageClient, endpoint: OpenAIServer
) -> None:
    endpoint.set_script([Turn(status=500), Turn(status=500), Turn(text="back")])
    with pytest.raises(JsonRpcException) as info:
        await chat(client, {"message": "q"})
    assert "HTTP 500" in info.value.message and "Next step" in info.value.message
    assert (await chat(client, {"message": "q"}))["text"] == "back"


async def test_a_stream_that_fails_after_200_is_an_error_response_not_an_empty_answer(
    client: LanguageClient, endpoint: OpenAIServer
) -> None:
    endpoint.set_script([Turn(text="Half an", stream_error="llama_decode failed"), Turn(text="ok")])
    with pytest.raises(JsonRpcException) as info:
        await chat(client, {"message": "q", "workDoneToken": "tok-broken"})
    assert "error in the middle of its answer" in info.value.message
    assert "llama_decode failed" in info.value.message and "Next step" in info.value.message
    assert rec(client).progress["tok-broken"][-1] == {"kind": "end", "message": "failed"}
    # 200, then nothing (no text, no finish_reason); asked whole, the body breaks off too
    endpoint.set_script([Turn(end_early=True)])
    with pytest.raises(JsonRpcException, match=r"dropped the connection mid-answer \(2 tries\)"):
        await chat(client, {"message": "q"})
    endpoint.set_script([Turn(text="back")])
    assert (await chat(client, {"message": "q"}))["text"] == "back"


async def test_bad_params_are_clear_errors(client: LanguageClient) -> None:
    with pytest.raises(JsonRpcException, match=r"needs params\.message"):
        await chat(client, {"conversationId": "x"})
    with pytest.raises(JsonRpcException, match=r"context\.range must be"):
        await chat(client, {"message": "q", "context": {"range": {"start": 1}}})


async def test_not_configured_is_explained_and_other_tools_still_work(
    client: LanguageClient, endpoint: OpenAIServer, workspace: Path
) -> None:
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"companion": {"storeEnabled": False}})
    )
    try:
        with pytest.raises(JsonRpcException) as info:
            await chat(client, {"message": "q"})
        assert "not configured" in info.value.message
        assert "11434/v1" in info.value.message and "8000/v1" in info.value.message
        scan = await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="companion.workspace.scan", arguments=[{}])
        )
        assert plain(scan)["counts"] == {"config": 1}
    finally:
        client.workspace_did_change_configuration(
            lsp.DidChangeConfigurationParams(settings=llm_settings(endpoint))
        )
        await asyncio.sleep(0.2)


async def test_chat_file_ask_streams_the_answer_into_the_document(
    client: LanguageClient, endpoint: OpenAIServer, workspace: Path
) -> None:
    path = workspace / "q.chat.md"
    text = (
        "# Chat\n\n## You\n\nfirst?\n\n## companion\n\nold answer\n\n## You\n\nWas Solar derived?\n"
    )
    path.write_text(text)
    uri = path.as_uri()
    rec(client).texts[uri] = text
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "markdown", 1, text))
    )
    endpoint.set_script([Turn(text="Inconclusive: the first loss was not logged.", chunks=6)])
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri),
            range=lsp.Range(lsp.Position(11, 0), lsp.Position(11, 0)),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    ask = next(a for a in actions or [] if a.title == "Ask companion")
    assert isinstance(ask, lsp.CodeAction) and ask.command is not None
    result = plain(
        await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command=ask.command.command, arguments=ask.command.arguments)
        )
    )
    assert result["text"] == "Inconclusive: the first loss was not logged."
    final = rec(client).texts[uri]
    assert final == text + "\n## companion\n\n" + result["text"] + "\n\n\n## You\n\n"
    assert len([e for u, e in rec(client).edits if u == uri]) >= 2
    msgs = endpoint.chat_requests()[-1].body["messages"]
    assert [m["content"] for m in msgs[1:]] == ["first?", "old answer", "Was Solar derived?"]


async def test_explain_architecture_opens_a_chat_document(
    client: LanguageClient, endpoint: OpenAIServer, workspace: Path
) -> None:
    uri = (workspace / "m" / "config.json").as_uri()
    config = (workspace / "m" / "config.json").read_text()
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "json", 1, config))
    )
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri),
            range=lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    explain = next(a for a in actions or [] if a.title == "Explain this architecture")
    assert isinstance(explain, lsp.CodeAction) and explain.command is not None
    endpoint.set_script([Turn(text="A 2-layer llama with a 32,000-token vocabulary.")])
    result = plain(
        await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(
                command=explain.command.command, arguments=explain.command.arguments
            )
        )
    )
    assert result["uri"].endswith(".chat.md")
    doc = Path(result["uri"].removeprefix("file://")).read_text()
    assert "## companion\n\nA 2-layer llama with a 32,000-token vocabulary." in doc
    assert doc.rstrip().endswith("## You")
    request = endpoint.chat_requests()[-1].body["messages"]
    assert '"num_hidden_layers": 2' in request[0]["content"]
    assert request[-1]["content"].startswith("Explain the architecture described by")
