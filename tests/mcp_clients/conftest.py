"""The real MCP clients (Inspector CLI, Cline CLI), opt-in.

`make test-mcp-clients` installs them (scripts/install_mcp_clients.sh) and sets
COMPANION_MCP_CLIENTS to their folder; plain pytest skips these tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CLIENTS = os.environ.get("COMPANION_MCP_CLIENTS")


def client_bin(name: str) -> Path:
    """A client executable from the install folder; skips the test when it is not installed."""
    if not CLIENTS:
        pytest.skip("real MCP clients are opt-in: run `make test-mcp-clients`")
    path = Path(CLIENTS) / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `bash scripts/install_mcp_clients.sh`")
    return path


@pytest.fixture
def inspector() -> Path:
    """The MCP Inspector CLI."""
    return client_bin("mcp-inspector")


@pytest.fixture
def cline() -> Path:
    """The Cline CLI."""
    return client_bin("cline")
