"""`companion verify` of audits whose inputs were remote: every recorded range is re-fetched
from the loopback hub (127.0.0.1), bypassing the range cache, and compared by ETag and
sha256; a changed file, an ETag that changes mid-read and other bytes under the same ETag are
mismatches that say why."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.hub_server import Hub
from helpers.remote_repos import family_repos, hub_env

from companion.settings import Settings
from companion.store.schemas import VerifyResult
from companion.toolbox import context, run_tool
from companion.tools import ToolContext

ARGS = {"a": "hf://org/base", "b": "hf://org/tuned", "roles": ["norm", "attn"]}


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """The loopback hub with org/base, org/tuned and org/other."""
    with hub_env(family_repos(tmp_path), tmp_path, monkeypatch) as h:
        yield h


@pytest.fixture
def ctx(hub: Hub, tmp_path: Path) -> ToolContext:
    """A recording context (the store lives in this test's COMPANION_HOME)."""
    return context(Settings(), [tmp_path])


def record(ctx: ToolContext) -> tuple[str, list[list[list[int]]]]:
    """Audit the remote pair; its record id and the ranges its manifest names per input."""
    result = run_tool("audit.compare", ARGS, ctx)
    assert result.record_id and result.manifest
    return result.record_id, [i.ranges or [] for i in result.manifest.inputs]


def verify(ctx: ToolContext, target: str) -> VerifyResult:
    """Run store.verify."""
    result = run_tool("store.verify", {"target": target}, ctx)
    assert isinstance(result, VerifyResult)
    return result


def test_unchanged_remote_inputs_reproduce_after_every_range_is_fetched_again(
    hub: Hub, ctx: ToolContext
) -> None:
    rid, ranges = record(ctx)
    hub.sent, hub.requests = 0, []
    result = verify(ctx, rid)
    assert result.status == "reproduced", result.to_markdown()
    assert [(f.remote, f.status) for f in result.files] == [(True, "ok"), (True, "ok")]
    assert all("ETag unchanged" in (f.reason or "") for f in result.files)
    asked = {r for m, _, r in hub.requests if m == "GET"}
    for a, b in (r for per_input in ranges for r in per_input):
        assert f"bytes={a}-{b - 1}" in asked  # the recorded range itself, not the cache
    assert hub.sent == sum(b - a for per_input in ranges for a, b in per_input)


def test_a_file_changed_on_the_hub_is_a_mismatch_naming_both_etags(
    hub: Hub, ctx: ToolContext
) -> None:
    rid, _ = record(ctx)
    before = hashlib.sha256(hub.repos["org/tuned"]["model.safetensors"]).hexdigest()
    hub.repos["org/tuned"]["model.safetensors"] = hub.repos["org/other"]["model.safetensors"]
    after = hashlib.sha256(hub.repos["org/tuned"]["model.safetensors"]).hexdigest()
    result = verify(ctx, rid)
    assert result.status == "mismatch"
    status = {f.path.split("/")[-4]: f for f in result.files}  # .../org/NAME/resolve/...
    assert status["base"].status == "ok"
    tuned = status["tuned"]
    assert tuned.status == "changed" and tuned.actual_sha256 == after
    assert tuned.reason and "changed on the server" in tuned.reason
    assert before in tuned.reason and after in tuned.reason
    assert tuned.reason in result.to_markdown()


def test_an_etag_that_changes_while_verifying_is_a_change(hub: Hub, ctx: ToolContext) -> None:
    rid, _ = record(ctx)
    hub.faults.add("etag")  # HEAD still gives the old ETag; the range answers do not
    result = verify(ctx, rid)
    assert result.status == "mismatch"
    assert [f.status for f in result.files] == ["changed", "changed"]
    assert all("changed while it was being read" in (f.reason or "") for f in result.files)


def test_other_bytes_under_the_same_etag_are_caught_by_the_range_sha256(
    hub: Hub, ctx: ToolContext
) -> None:
    rid, _ = record(ctx)
    hub.faults.add("tamper")
    result = verify(ctx, rid)
    assert result.status == "mismatch"
    assert [f.status for f in result.files] == ["changed", "changed"]
    assert all("same ETag" in (f.reason or "") for f in result.files)


def test_a_vanished_file_is_missing_with_the_next_step(hub: Hub, ctx: ToolContext) -> None:
    rid, _ = record(ctx)
    del hub.repos["org/base"]
    result = verify(ctx, rid)
    assert result.status == "mismatch"
    base = next(f for f in result.files if "/org/base/" in f.path)
    assert base.status == "missing" and base.reason and "404" in base.reason
    assert "Next step" in base.reason


def test_chat_and_agents_do_not_refetch(hub: Hub, ctx: ToolContext, tmp_path: Path) -> None:
    rid, _ = record(ctx)
    hub.sent = 0
    confined = context(Settings(), [tmp_path], confine=True)
    result = verify(confined, rid)
    assert result.status == "mismatch" and hub.sent == 0
    assert all(f.status == "missing" and "not re-fetched" in (f.reason or "") for f in result.files)
