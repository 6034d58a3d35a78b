"""A tool that fails mid-run (after progress) is an `isError` result with text, never an
empty success. In-process (`mcp.Client(server)`), with the failure injected into run_tool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.mcp_client import text
from mcp import Client

from companion.errors import CompanionError, InputError
from companion.mcp import calls
from companion.mcp.server import build_server
from companion.settings import Settings
from companion.tools import ToolContext

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("failure", "expect"),
    [
        (RuntimeError("engine broke"), "internal error in evidence_summarize"),
        (RuntimeError(), "internal error in evidence_summarize"),  # an empty message
        (KeyError(""), "internal error in evidence_summarize"),
        (InputError("train.log ends mid-record.", hint="pass a complete log."), "mid-record"),
        (CompanionError(""), "companion:"),
    ],
)
async def test_a_failing_tool_is_an_error_never_an_empty_success(
    workspace: Path, home: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception, expect: str
) -> None:
    def fail_midway(name: str, raw: object, ctx: ToolContext) -> Any:
        ctx.progress("halfway", 0.5)
        raise failure

    monkeypatch.setattr(calls, "run_tool", fail_midway)

    async def progress(value: float, total: float | None, message: str | None) -> None:
        pass  # the report may or may not beat the failure; the call must not hang on it

    server = build_server([workspace], allow_writes=False, settings=Settings(home=home))
    async with Client(server) as client:
        result = await client.call_tool(
            "evidence_summarize", {"paths": ["train.log"]}, progress_callback=progress
        )
        monkeypatch.undo()  # the same server still answers the next call
        after = await client.call_tool("evidence_summarize", {"paths": ["train.log"]})
    said = text(result)
    assert result.is_error, said
    assert result.structured_content is None
    assert said.strip() and expect in said, said
    assert not after.is_error and text(after).strip(), text(after)
