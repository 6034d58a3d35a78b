"""Demo section for chat: asks the configured endpoint about the demo's recorded evidence.

With no endpoint configured it shows the ready-to-paste setup instead (every other tool
has already run without one).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import Field

from companion.errors import CompanionError, NotConfiguredError
from companion.tools import Show, ToolContext, ToolResult

QUESTION = (
    "Was checkpoints/finetune derived from checkpoints/base, and was "
    "evidence/scratch-run trained from scratch? Cite the recorded figures and baselines."
)


class ChatDemo(ToolResult):
    """One demo chat turn, or why it could not run."""

    question: str
    answer: str = ""
    tool_calls: list[str] = Field(default_factory=list)
    problem: str = ""

    def to_markdown(self) -> str:
        """Render the turn."""
        lines = [f"**You:** {self.question}", ""]
        if self.problem:
            return "\n".join([*lines, "```text", self.problem, "```"])
        if self.tool_calls:
            lines += [f"*tools called: {', '.join(self.tool_calls)}*", ""]
        return "\n".join([*lines, f"**companion:** {self.answer}"])


def build(workspace: Path) -> None:
    """Write a chat file any LSP client can use with the "Ask companion" code action."""
    (workspace / "ask.chat.md").write_text(f"# Ask companion\n\n{QUESTION}\n", encoding="utf-8")


def run(workspace: Path, ctx: ToolContext, show: Show) -> None:
    """Ask the question through the real chat engine."""
    from companion.llm import ChatRequest, ChatService

    async def ask() -> ChatDemo:
        service = ChatService()
        try:
            result = await service.chat(ChatRequest(message=QUESTION), ctx.settings, [workspace])
        finally:
            await service.close()
        return ChatDemo(
            question=QUESTION, answer=result.text, tool_calls=[c.name for c in result.tool_calls]
        )

    try:
        outcome = asyncio.run(ask())
    except NotConfiguredError as exc:
        outcome = ChatDemo(question=QUESTION, problem=exc.text)
    except CompanionError as exc:
        outcome = ChatDemo(question=QUESTION, problem=f"The endpoint failed: {exc.text}")
    show("chat (grounded in the demo store)", outcome)
