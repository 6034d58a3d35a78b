"""The job handle an engine gets besides its plain arguments: progress reports and cancel."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from companion.errors import Cancelled

Progress = Callable[[str, float | None], None]


def no_progress(message: str, fraction: float | None) -> None:
    """Discard progress reports."""


@dataclass
class Job:
    """Progress and cancellation of one long computation (all an engine knows of its caller)."""

    progress: Progress = no_progress
    cancel: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Raise `Cancelled` if the user cancelled this job."""
        if self.cancel.is_set():
            raise Cancelled()

    def report(self, message: str, fraction: float | None = None) -> None:
        """Report progress (a message and an optional fraction done in [0, 1])."""
        self.progress(message, fraction)
