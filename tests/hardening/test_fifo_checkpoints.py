"""A FIFO named like a GGUF or PyTorch checkpoint is refused at once, never read."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from companion.audit.checkpoint import open_checkpoint
from companion.errors import InputError


@pytest.mark.parametrize("name", ["model.gguf", "pytorch_model.bin", "weights.pt"])
def test_a_fifo_checkpoint_is_refused_not_read(tmp_path: Path, name: str) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            open_checkpoint(fifo)
            outcome.append(None)
        except BaseException as exc:  # recorded for the assertion below
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=60)  # a bounded wait: a blocked open never returns
    if worker.is_alive():  # unblock the reader so the test process can exit, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail(f"opening a FIFO named {name} blocked")
    assert isinstance(outcome[0], InputError), outcome
    assert "not a regular file" in outcome[0].text and outcome[0].hint
