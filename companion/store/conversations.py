"""Chat transcripts: one row per conversation, replaced on every save."""

from __future__ import annotations

import json
from typing import Any

from companion.errors import InputError
from companion.settings import Settings
from companion.store.backend import dialect_of
from companion.store.db import settings_store, write_transaction
from companion.store.record import now_iso

MAX_ID_LENGTH = 200


def _check_id(conversation_id: str) -> None:
    """Conversation ids are short non-empty strings."""
    if not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= MAX_ID_LENGTH:
        raise InputError(
            f"A conversation id must be a non-empty string of at most {MAX_ID_LENGTH} characters.",
            hint="omit conversationId to start a new conversation.",
        )


def save(settings: Settings, conversation_id: str, messages: list[Any]) -> None:
    """Insert or replace a transcript (JSON list of messages)."""
    _check_id(conversation_id)
    payload = json.dumps(messages, default=str)
    now = now_iso()
    with settings_store(settings) as conn, write_transaction(conn):
        conn.execute(
            "INSERT INTO chat_transcripts(id, messages, created, updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET messages = excluded.messages, "
            "updated = excluded.updated",
            (conversation_id, payload, now, now),
        )


def load(settings: Settings, conversation_id: str) -> list[Any] | None:
    """The saved messages of a conversation, or None."""
    _check_id(conversation_id)
    with settings_store(settings) as conn:
        row = conn.execute(
            "SELECT messages FROM chat_transcripts WHERE id = ?", (conversation_id,)
        ).fetchone()
    if row is None:
        return None
    messages = json.loads(row[0])
    return messages if isinstance(messages, list) else None


def recent(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The most recently updated conversations: id, updated time and message count."""
    with settings_store(settings) as conn:
        length = dialect_of(conn).json_array_length("messages")
        rows = conn.execute(
            f"SELECT id, updated, {length} FROM chat_transcripts ORDER BY updated DESC LIMIT ?",
            (max(1, min(limit, 1000)),),
        ).fetchall()
    return [{"id": r[0], "updated": r[1], "messages": r[2]} for r in rows]
