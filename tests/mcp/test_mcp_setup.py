"""The set-up snippets in docs/mcp.md and the README parse and start `companion mcp`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from companion.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
_SNIPPET = re.compile(r"<!-- snippet: ([\w-]+) -->\n```json\n(.*?)\n```", re.S)
# Where each client keeps its servers, and the keys it needs in a stdio entry.
SHAPES = {
    "cline": ("mcpServers", {"command", "args", "disabled", "timeout"}),
    "claude-code": ("mcpServers", {"type", "command", "args"}),
    "continue": ("mcpServers", {"command", "args"}),
    "vscode": ("servers", {"type", "command", "args"}),
}


def _snippets() -> dict[str, Any]:
    """The tagged JSON snippets of docs/mcp.md, parsed."""
    text = (REPO / "docs" / "mcp.md").read_text()
    return {name: json.loads(body) for name, body in _SNIPPET.findall(text)}


def _starts_mcp(entry: dict[str, Any]) -> None:
    """The entry runs `companion mcp` with arguments the real parser accepts."""
    assert entry["command"] == "companion"
    ns = build_parser(with_tools=False).parse_args(entry["args"])
    assert ns.command == "mcp"


def test_every_client_has_a_snippet() -> None:
    """Cline/Caret, Claude Code, Continue and VS Code each have one."""
    assert set(_snippets()) == set(SHAPES)


@pytest.mark.parametrize("client", sorted(SHAPES))
def test_snippet_shape(client: str) -> None:
    """JSON with the client's top-level key and the required keys of a stdio entry."""
    top, required = SHAPES[client]
    data = _snippets()[client]
    assert list(data) == [top]
    entry = data[top]["companion"]
    assert required <= set(entry), required - set(entry)
    if "type" in entry:
        assert entry["type"] == "stdio"
    _starts_mcp(entry)


def test_readme_section_snippets() -> None:
    """The README's agent section has a Cline snippet of the same shape and the one-liners."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Use companion from your agent", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```json\n(.*?)\n```", section, re.S)
    assert len(blocks) == 1
    entry = json.loads(blocks[0])["mcpServers"]["companion"]
    assert SHAPES["cline"][1] <= set(entry)
    _starts_mcp(entry)
    assert "claude mcp add companion -- companion mcp" in section
    assert "docs/mcp.md" in section
