"""The SQLite audit store (see the store issue)."""

from __future__ import annotations

from companion.settings import Settings
from companion.tools import Recorder


def recorder_for(settings: Settings) -> Recorder | None:
    """The recorder that saves tool results to the store; None while recording is off."""
    if not settings.store_enabled:
        return None
    return None  # replaced by the store engine when it lands
