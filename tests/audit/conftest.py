"""Fixtures for the audit tests: one generated checkpoint family per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.audit_checkpoints import family


@pytest.fixture(scope="session")
def fam(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated family (tiny: ~0.3 M parameters each)."""
    return family(tmp_path_factory.mktemp("family"))
