"""`companion.audit.compare` over LSP: off the event loop, with progress and cancellation."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers.lsp import client_fixture
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from companion.audit import synth

pytestmark = pytest.mark.asyncio(loop_scope="module")

# ~140 MB of float32: an audit of it takes seconds, so there is time to interleave and cancel.
BIG = synth.Spec(vocab=2048, hidden=512, layers=8, heads=8, intermediate=2048)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding one large generated checkpoint and a small family."""
    root = tmp_path_factory.mktemp("ws")
    synth.save(root / "big", synth.base(BIG, seed=0), BIG)
    synth.family(root / "small")
    return root


client = client_fixture()  # VS Code capabilities: it supports work-done progress


def start_audit(client: LanguageClient, args: dict[str, Any]) -> tuple[str, asyncio.Future[Any]]:
    """Send the command with a known request id (so it can be cancelled)."""
    msg_id = str(uuid.uuid4())
    params = lsp.ExecuteCommandParams(command="companion.audit.compare", arguments=[args])
    coro = client.protocol.send_request_async("workspace/executeCommand", params, msg_id=msg_id)
    return msg_id, asyncio.ensure_future(coro)


async def audit_token(client: LanguageClient, before: set[Any]) -> Any:
    """Wait for the audit's progress token to report work (bounded wait)."""
    for _ in range(400):
        for token, reports in list(client.progress_reports.items()):
            if token in before:
                continue
            begun = [r for r in reports if isinstance(r, lsp.WorkDoneProgressBegin)]
            worked = [r for r in reports if isinstance(r, lsp.WorkDoneProgressReport)]
            if begun and "audit.compare" in begun[0].title and worked:
                return token
        await asyncio.sleep(0.025)
    raise AssertionError("no progress report from the audit")


async def assert_stopped(client: LanguageClient, token: Any) -> None:
    """After cancellation the worker sends no more progress reports."""
    for _ in range(1200):  # bounded: 30 s
        if any(isinstance(r, lsp.WorkDoneProgressEnd) for r in client.progress_reports[token]):
            break
        await asyncio.sleep(0.025)
    assert isinstance(client.progress_reports[token][-1], lsp.WorkDoneProgressEnd)
    await asyncio.sleep(0.3)
    count = len(client.progress_reports[token])
    await asyncio.sleep(0.7)
    assert len(client.progress_reports[token]) == count


async def test_small_audit_returns_verdict(client: LanguageClient, workspace: Path) -> None:
    small = workspace / "small"
    _, fut = start_audit(client, {"a": str(small / "base"), "b": str(small / "finetune")})
    result = await asyncio.wait_for(fut, 60)
    assert result["verdict"] == "derived" and result["manifest"]["tool"] == "audit.compare"


async def test_responsive_progress_and_cancel_request(
    client: LanguageClient, workspace: Path
) -> None:
    before = set(client.progress_reports)
    big = str(workspace / "big")
    msg_id, fut = start_audit(client, {"a": big, "b": big})
    token = await audit_token(client, before)
    scan = client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="companion.workspace.scan", arguments=[{}])
    )
    listing = await asyncio.wait_for(scan, 30)
    assert listing["counts"]["checkpoint"] >= 4
    assert not fut.done()  # the server answered while the audit was still running
    client.protocol.notify("$/cancelRequest", lsp.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(fut, 30)
    assert "cancel" in str(err.value).lower()
    await assert_stopped(client, token)


async def test_work_done_progress_cancel(client: LanguageClient, workspace: Path) -> None:
    before = set(client.progress_reports)
    big = str(workspace / "big")
    _, fut = start_audit(client, {"a": big, "b": big})
    token = await audit_token(client, before)
    client.window_work_done_progress_cancel(lsp.WorkDoneProgressCancelParams(token=token))
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(fut, 30)
    assert "Cancelled by the user" in str(err.value)  # raised by the worker itself
    await assert_stopped(client, token)
    ends = [r for r in client.progress_reports[token] if isinstance(r, lsp.WorkDoneProgressEnd)]
    assert ends and ends[0].message == "cancelled"
