"""Recorded runs as resources and the prompt templates as prompts, over the real server."""

from __future__ import annotations

from pathlib import Path

import mcp_types as types
import pytest
from helpers.mcp_client import session, structured
from mcp.shared.exceptions import MCPError

from companion.mcp.prompts import prompt_dir

pytestmark = pytest.mark.timeout(240)


async def test_recorded_runs_are_resources(workspace: Path, home: Path) -> None:
    """Each recorded run is listed (verdict in its title) and reads as an evidence bundle."""
    async with session("--root", str(workspace), home=home) as s:
        assert (await s.list_resources()).resources == []
        evidence = await s.call_tool("evidence_summarize", {"paths": ["train.log", "config.json"]})
        audit = await s.call_tool("audit_compare", {"a": "a.safetensors", "b": "b.safetensors"})
        listed = (await s.list_resources()).resources
        templates = (await s.list_resource_templates()).resource_templates
        ids = [structured(r)["record_id"] for r in (audit, evidence)]
        assert [str(r.uri) for r in listed] == [f"companion://record/{i}" for i in ids]
        read = await s.read_resource(listed[1].uri)
        with pytest.raises(MCPError) as unknown:
            await s.read_resource("companion://record/ffffffffffff")
        with pytest.raises(MCPError) as foreign:
            await s.read_resource("file:///etc/passwd")
    assert listed[0].title is not None and "audit.compare → derived" in listed[0].title
    assert listed[1].title is not None and "from_scratch" in listed[1].title
    assert templates[0].uri_template == "companion://record/{id}"
    (content,) = read.contents
    assert isinstance(content, types.TextResourceContents)
    assert content.text.startswith(f"# Evidence bundle {ids[1]}: evidence.summarize")
    assert "- Verdict: **from_scratch**" in content.text and "train.log" in content.text
    assert "Next step:" in unknown.value.message
    assert "resources/list" in foreign.value.message


async def test_prompt_templates_are_prompts(workspace: Path, home: Path) -> None:
    """Every template file is a prompt whose $placeholders are its arguments."""
    files = sorted(
        p.name.removesuffix(".md") for p in prompt_dir().iterdir() if p.name.endswith(".md")
    )
    async with session("--root", str(workspace), home=home) as s:
        prompts = {p.name: p for p in (await s.list_prompts()).prompts}
        pair = await s.get_prompt("investigate_pair", {"a": "glm-4.5-air", "b": "solar-open"})
        with pytest.raises(MCPError) as unknown:
            await s.get_prompt("no_such_prompt", {})
    assert sorted(prompts) == files
    assert {a.name for a in prompts["investigate_pair"].arguments or []} == {"a", "b", "logs"}
    assert [a.name for a in prompts["explain_evidence"].arguments or []] == ["uri"]
    (message,) = pair.messages
    assert message.role == "user" and isinstance(message.content, types.TextContent)
    body = message.content.text
    assert body.startswith("Investigate whether model B (solar-open) was derived from model A")
    assert "(glm-4.5-air)" in body and "logs of B, if any: (not given)" in body
    assert "$" not in body  # every placeholder was filled
    assert "prompts/list" in unknown.value.message
