"""Shared pytest configuration."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Timing belongs in benchmarks, not tests: no profile has a deadline. On CI (CI=true) the
# examples are fewer and derandomized, so that a loaded machine can neither flake nor vary;
# the volume lives in `make fuzz`.
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    max_examples=40,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=150)
settings.load_profile(
    "ci" if os.environ.get("CI") == "true" else os.environ.get("HYPOTHESIS_PROFILE", "dev")
)

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
