"""Generated pairs for the investigation tests: a family of checkpoints and real training logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from companion.audit import synth
from companion.evidence.demo import build as build_logs
from companion.settings import Settings
from companion.toolbox import context
from companion.tools import ToolContext


@pytest.fixture(scope="session")
def family(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """base, finetune, independent checkpoints plus a from-scratch and a fine-tune log."""
    root = tmp_path_factory.mktemp("case")
    paths = synth.family(root / "models")
    build_logs(root / "logs")
    paths["scratch_log"] = root / "logs/evidence/scratch-run/train.log"
    paths["finetune_log"] = root / "logs/evidence/finetune-run/trainer_state.json"
    return paths


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    """A registry context recording into a fresh store."""
    return context(Settings(home=tmp_path / "home"), [tmp_path])
