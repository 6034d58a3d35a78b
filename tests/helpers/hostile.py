"""Small generated inputs shared by the hardening tests."""

from __future__ import annotations

import json
from pathlib import Path


def trainer_state(folder: Path, first: float = 6.9) -> Path:
    """A small trainer_state.json whose loss falls from `first`."""
    folder.mkdir(parents=True, exist_ok=True)
    history = [{"step": i + 1, "loss": first - 0.01 * i, "learning_rate": 1e-4} for i in range(50)]
    path = folder / "trainer_state.json"
    path.write_text(json.dumps({"log_history": history}))
    return path
