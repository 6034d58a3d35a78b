"""Shared pytest configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never touch the real per-user store: every test gets its own COMPANION_HOME."""
    if "COMPANION_HOME" not in os.environ or os.environ["COMPANION_HOME"].startswith(str(REPO)):
        monkeypatch.setenv("COMPANION_HOME", str(tmp_path_factory.mktemp("home")))
