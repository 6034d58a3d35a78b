"""The audit store (SQLite, or PostgreSQL for teams): every recorded run, queryable,
exportable and re-verifiable."""

from __future__ import annotations

from typing import Any

from companion.settings import Settings
from companion.tools import Recorder


def recorder_for(settings: Settings) -> Recorder | None:
    """The recorder that saves tool results to the store; None while recording is off."""
    if not settings.store_enabled:
        return None
    from companion.store.record import StoreRecorder

    return StoreRecorder(settings.store_url or settings.resolved_store_path())


def save_conversation(settings: Settings, conversation_id: str, messages: list[Any]) -> None:
    """Save (replace) a chat transcript under its conversation id."""
    from companion.store.conversations import save

    save(settings, conversation_id, messages)


def load_conversation(settings: Settings, conversation_id: str) -> list[Any] | None:
    """A saved chat transcript, or None if there is no conversation with that id."""
    from companion.store.conversations import load

    return load(settings, conversation_id)
