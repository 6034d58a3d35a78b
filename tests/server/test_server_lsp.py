"""End-to-end: the real `companion serve` driven by pytest-lsp with recorded editor capabilities."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers.lsp import CLIENTS, client_fixture
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

WORKSPACE_FILES = {
    "ckpt/model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
    "ckpt/config.json": b'{"model_type": "llama", "hidden_size": 64}',
    "ckpt/tokenizer.json": b"{}",
    "logs/train.log": b"iteration 1/ 10 | lm loss: 1.0850E+01 |\n",
    "notes.txt": b"not an artifact",
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated workspace with one artifact of each kind."""
    root = tmp_path_factory.mktemp("ws")
    for rel, data in WORKSPACE_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


SETTINGS = {"logLevel": "DEBUG", "scanMaxFiles": 1000}


def check_initialized(_: LanguageClient, result: lsp.InitializeResult) -> None:
    """The server names itself and offers the scan command."""
    assert result.server_info is not None and result.server_info.name == "companion"
    commands = result.capabilities.execute_command_provider
    assert commands is not None and "companion.workspace.scan" in commands.commands


# Initialize with each recorded client's capabilities and valid settings.
client = client_fixture(
    editors=CLIENTS, options=lambda _: {"companion": SETTINGS}, check=check_initialized
)


async def scan(client: LanguageClient, args: object) -> dict[str, object]:
    """Run companion.workspace.scan through workspace/executeCommand."""
    return await client.workspace_execute_command_async(  # type: ignore[no-any-return]
        lsp.ExecuteCommandParams(command="companion.workspace.scan", arguments=[args])
    )


async def test_scan_lists_artifacts_by_kind(client: LanguageClient, workspace: Path) -> None:
    result = await scan(client, {})
    kinds = {
        Path(a["path"]).relative_to(workspace).as_posix(): a["kind"] for a in result["artifacts"]
    }
    assert kinds == {
        "ckpt/model.safetensors": "checkpoint",
        "ckpt/config.json": "config",
        "ckpt/tokenizer.json": "tokenizer",
        "logs/train.log": "training_log",
    }
    assert result["counts"] == {"checkpoint": 1, "config": 1, "tokenizer": 1, "training_log": 1}
    assert result["total_bytes"] == sum(
        len(v) for k, v in WORKSPACE_FILES.items() if k != "notes.txt"
    )


async def test_scan_honours_settings_change(client: LanguageClient) -> None:
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"companion": {"scanMaxFiles": 2}})
    )
    await asyncio.sleep(0.2)
    result = await scan(client, {})
    assert result["truncated"] is True and result["files_seen"] == 2
    # an empty change (eglot sends one at start-up) means "nothing changed", not "defaults"
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings={}))
    await asyncio.sleep(0.2)
    assert (await scan(client, {}))["files_seen"] == 2
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"companion": {"scanMaxFiles": 1000}})
    )
    await asyncio.sleep(0.2)
    assert (await scan(client, {}))["truncated"] is False


async def test_invalid_settings_warn_and_fall_back(client: LanguageClient) -> None:
    before = len(client.messages)
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"companion": {"scanMaxFiles": "lots"}})
    )
    for _ in range(50):
        if len(client.messages) > before:
            break
        await asyncio.sleep(0.05)
    shown = [m for m in client.messages[before:] if m.type == lsp.MessageType.Error]
    assert shown and "scan_max_files" in shown[0].message and "Using defaults" in shown[0].message
    assert (await scan(client, {}))["truncated"] is False  # defaults are in force


async def test_wrong_argument_types_get_clear_error(client: LanguageClient) -> None:
    with pytest.raises(JsonRpcException) as err:
        await scan(client, {"max_files": "many"})
    assert "max_files" in str(err.value) and "companion scan --help" in str(err.value)
    with pytest.raises(JsonRpcException) as err:
        await scan(client, ["not", "an", "object"])
    assert "takes an object" in str(err.value)


async def test_missing_arguments_and_unknown_command(client: LanguageClient) -> None:
    with pytest.raises(JsonRpcException) as err:
        await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="companion.show", arguments=[])
        )
    assert "needs {tool" in str(err.value)
    with pytest.raises(JsonRpcException) as err:
        await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="companion.nope", arguments=[])
        )
    assert "not defined" in str(err.value)
    with pytest.raises(JsonRpcException):
        await client.protocol.send_request_async("companion/doesNotExist", {})
    assert (await scan(client, {}))["counts"]  # still alive


async def test_path_outside_workspace_missing(client: LanguageClient, tmp_path: Path) -> None:
    with pytest.raises(JsonRpcException) as err:
        await scan(client, {"paths": [str(tmp_path / "missing")]})
    assert "does not exist" in str(err.value) and "Next step" in str(err.value)


async def test_logs_are_forwarded_to_client(client: LanguageClient) -> None:
    # Its own settings warning (an unknown key; the settings in force stay the same): the
    # test must not lean on the log lines an earlier test happened to cause.
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"companion": {**SETTINGS, "noSuchKey": 1}})
    )
    for _ in range(100):
        if any("settings" in m.message for m in client.log_messages):
            break
        await asyncio.sleep(0.05)
    assert any("settings" in m.message for m in client.log_messages)


async def test_burst_of_requests(client: LanguageClient) -> None:
    """1,000 concurrent requests all get answers; the server stays up."""
    calls = [scan(client, {"max_files": 3}) for _ in range(1000)]
    results = await asyncio.gather(*calls)
    assert len(results) == 1000 and all(r["files_seen"] == 3 for r in results)
