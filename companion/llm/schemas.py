"""Result models of a chat turn (serialised camelCase for LSP clients)."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from companion.model import Model


class _Camel(Model):
    """Dumped with camelCase keys (`model_dump(by_alias=True)`)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ToolCallRecord(_Camel):
    """One tool call the model made: what it asked for and what it got."""

    name: str
    arguments: Any = None
    result: Any = None
    error: str | None = None


class Usage(_Camel):
    """Token usage summed over every request of the turn."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = Field(
        default=False, description="True when the endpoint reported no usage and we counted."
    )


class ChatResult(_Camel):
    """The final answer of one chat turn."""

    conversation_id: str
    text: str
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    notes: list[str] = Field(default_factory=list)
    model: str = ""
    context_length: int = 0

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent to LSP clients."""
        return self.model_dump(mode="json", by_alias=True)
