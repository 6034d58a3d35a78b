"""Fixtures for the store tests: an isolated store, a recording context, sample files."""

from __future__ import annotations

from pathlib import Path

import helpers.store_tools  # noqa: F401  (registers the test-only recordable tools)
import pytest

from companion.settings import Settings
from companion.toolbox import context
from companion.tools import ToolContext


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose store lives in this test's temp dir."""
    return Settings(home=tmp_path / "home")


@pytest.fixture
def ctx(settings: Settings, tmp_path: Path) -> ToolContext:
    """A context that records into the test store, rooted at the temp dir."""
    return context(settings, [tmp_path])
