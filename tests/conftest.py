"""Shared pytest configuration."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

# Set before any test module builds a server environment, so that no test process (nor a
# server it spawns) ever writes to the real per-user store.
os.environ["COMPANION_HOME"] = tempfile.mkdtemp(prefix="companion-test-home-")


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own COMPANION_HOME."""
    monkeypatch.setenv("COMPANION_HOME", str(tmp_path_factory.mktemp("home")))
