"""Every registry tool through the real MCP stdio server, with the SDK's client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.mcp_client import session, store_records, structured, text

from companion.mcp.schema import mcp_name
from companion.toolbox import load_tools

pytestmark = pytest.mark.timeout(240)


def _arguments(ws: Path, record: str) -> dict[str, dict[str, Any]]:
    """Arguments for every tool, on the generated files (relative to the root where natural)."""
    return {
        "workspace_scan": {},
        "arch_describe": {"path": "config.json"},
        "arch_params": {"path": "config.json"},
        "arch_nearest": {"path": "config.json", "k": 2},
        "arch_diff": {"a": "config.json", "b": str(ws / "other" / "config.json")},
        "tokenizer_compare": {"a": "tok_a.json", "b": "tok_b.json"},
        "evidence_summarize": {"paths": ["train.log", "config.json"]},
        "audit_compare": {"a": "a.safetensors", "b": "b.safetensors", "null_draws": 50},
        "store_register": {"paths": ["a.safetensors"]},
        "fingerprint_compute": {"paths": ["a.safetensors"]},
        "fingerprint_identify": {"path": "b.safetensors", "top": 3},
        "fleet_fingerprint": {"source": "other"},  # no checkpoints there: no cluster started
        "audit_query": {"kind": ["evidence.*"]},
        "store_check": {},
        "store_verify": {"target": record},
        "store_export": {"id": record, "format": "json", "output": "bundle.json"},
        "case_investigate": {"a": "a.safetensors", "b": "b.safetensors", "logs_b": ["train.log"]},
        "store_migrate_to": {"url": "postgresql://127.0.0.1:1/none"},
    }


# Tools an agent is offered (with --allow-writes) that must still refuse, with a next step.
REFUSED = {"store_migrate_to": "yourself"}


async def test_list_tools_generated_from_registry(workspace: Path, home: Path) -> None:
    """Every read-only registry tool is offered with both schemas and a read-only hint."""
    async with session("--root", str(workspace), home=home) as s:
        listed = {t.name: t for t in (await s.list_tools()).tools}
    # The product's tools (other test modules declare test-only tools in this process).
    registry = [t for t in load_tools().values() if t.func.__module__.startswith("companion.")]
    assert set(listed) == {mcp_name(t) for t in registry if t.read_only}
    assert "store_export" not in listed  # a write tool, off without --allow-writes
    for t in registry:
        if not t.read_only:
            continue
        decl = listed[mcp_name(t)]
        assert decl.input_schema == t.llm_schema(confined=True)["function"]["parameters"]
        assert not set(t.output_fields) & set(decl.input_schema.get("properties", {}))
        assert decl.output_schema is not None and decl.output_schema["type"] == "object"
        assert decl.description is not None and decl.description.startswith(t.description)
        assert decl.annotations is not None and decl.annotations.read_only_hint is True
    audit = listed["audit_compare"].description or ""
    assert "inconclusive" in audit and "companion://record/" in audit


async def test_every_tool_called_on_generated_files(workspace: Path, home: Path) -> None:
    """Each tool (the write tool with --allow-writes) answers with text and typed content."""
    async with session("--root", str(workspace), "--allow-writes", home=home) as s:
        listed = {t.name: t for t in (await s.list_tools()).tools}
        first = await s.call_tool("evidence_summarize", {"paths": ["train.log", "config.json"]})
        record = structured(first)["record_id"]
        calls = _arguments(workspace, record)
        assert set(calls) == set(listed), "a tool has no MCP test case"
        results = {name: await s.call_tool(name, args) for name, args in calls.items()}
    for name in REFUSED:
        refused = results.pop(name)
        assert refused.is_error and REFUSED[name] in text(refused), text(refused)
    for name, result in results.items():
        assert not result.is_error, f"{name}: {text(result)}"
        assert text(result).strip(), name
        assert isinstance(result.structured_content, dict), name
    assert text(first).startswith("# Training-log evidence: **trained from scratch**")
    assert f"companion://record/{record}" in text(first)
    assert "DERIVED" in text(results["audit_compare"]).split("## Per role")[0]
    assert structured(results["store_verify"])["status"] == "reproduced"
    assert json.loads((workspace / "bundle.json").read_text())["id"] == record
    kinds = {k for k, _ in store_records(home)}
    assert {"evidence.summarize", "audit.compare", "arch.describe", "tokenizer.compare"} <= kinds


async def test_bad_arguments_and_unknown_tools_are_errors_with_a_next_step(
    workspace: Path, home: Path
) -> None:
    """Wrong types, missing fields, unknown names and write tools: isError, server stays up."""
    async with session("--root", str(workspace), home=home) as s:
        wrong = await s.call_tool("evidence_summarize", {"paths": 42})
        missing = await s.call_tool("audit_compare", {"a": "a.safetensors"})
        unknown = await s.call_tool("evidence_summarise", {})
        write = await s.call_tool("store_export", {"id": "abcd"})
        corrupt = await s.call_tool("audit_compare", {"a": "train.log", "b": "config.json"})
        still = await s.call_tool("arch_params", {"path": "config.json"})
    for result in (wrong, missing, unknown, write, corrupt):
        assert result.is_error
        assert "Next step:" in text(result), text(result)
    assert "inputSchema of evidence_summarize" in text(wrong)
    assert "b: Field required" in text(missing)
    assert "tools/list" in text(unknown) and "evidence_summarize" in text(unknown)
    assert "--allow-writes" in text(write)
    assert not still.is_error


async def test_paths_outside_the_roots_are_refused(
    workspace: Path, home: Path, tmp_path: Path
) -> None:
    """Absolute paths, `..` and symlinks out of the root are refused; nothing is read."""
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "train.log").write_text((workspace / "train.log").read_text())
    (workspace / "link.log").symlink_to(outside / "train.log")
    attempts = [str(outside / "train.log"), "../secret/train.log", "link.log", "/etc/passwd"]
    async with session("--root", str(workspace), home=home) as s:
        results = [await s.call_tool("evidence_summarize", {"paths": [p]}) for p in attempts]
        inside = await s.call_tool("evidence_summarize", {"paths": ["train.log"]})
    for result in results:
        assert result.is_error and "outside the workspace" in text(result), text(result)
    assert not inside.is_error
    assert [k for k, _ in store_records(home)] == ["evidence.summarize"]


async def test_roots_come_from_the_client_without_root_flags(
    workspace: Path, home: Path, tmp_path: Path
) -> None:
    """With no --root, the client's roots/list answer confines the tools."""
    async with session(home=home, roots=[workspace], cwd=tmp_path) as s:
        ok = await s.call_tool("arch_params", {"path": "config.json"})
        refused = await s.call_tool("arch_params", {"path": str(tmp_path / "x.json")})
    assert not ok.is_error, text(ok)
    assert refused.is_error and "outside the workspace" in text(refused)


async def test_a_huge_argument_is_an_error_not_a_crash(workspace: Path, home: Path) -> None:
    """A 20 MB path string and a 100k-element list get clear errors; the server survives."""
    async with session("--root", str(workspace), home=home) as s:
        long_path = await s.call_tool("arch_params", {"path": "x" * 20_000_000})
        many = await s.call_tool("evidence_summarize", {"paths": ["nope.log"] * 100_000})
        after = await s.call_tool("arch_params", {"path": "config.json"})
    assert long_path.is_error and "Next step:" in text(long_path)
    assert len(text(long_path)) < 10_000  # the error does not echo the argument back
    assert many.is_error and "Next step:" in text(many)
    assert not after.is_error
