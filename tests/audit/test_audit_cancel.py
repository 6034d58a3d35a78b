"""Cancellation reaches the phases after streaming: alignment, matching and summarizing."""

from __future__ import annotations

from pathlib import Path

import pytest

from companion.audit.engine import AuditSetup, run_audit
from companion.audit.schemas import AuditInput
from companion.errors import Cancelled
from companion.jobs import Job


@pytest.mark.parametrize("phase", ["aligning symmetries", "summarizing"])
def test_cancel_after_streaming_stops_the_audit(fam: dict[str, Path], phase: str) -> None:
    seen: list[str] = []
    job = Job()

    def progress(message: str, fraction: float | None) -> None:
        seen.append(message)
        if message == phase:
            job.cancel.set()

    job.progress = progress
    args = AuditInput(a=str(fam["base"]), b=str(fam["permuted"]))
    setup = AuditSetup(workers=1, digest_path=None, tool="audit.compare")
    with pytest.raises(Cancelled):
        run_audit(args, (fam["base"], fam["permuted"], None), job, setup)
    assert phase in seen
    assert seen[-1] == phase  # nothing ran to the next phase once cancelled


def test_cancel_between_null_draws() -> None:
    import numpy as np

    from companion.audit.hidden import relabel_test

    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 16))
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        relabel_test(w, lambda s: w[:, s], 16, 19, rng, 512, check)
    assert calls == 3  # stopped at the third draw, not after all 19
