"""Input and result schemas of `workspace.scan`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from companion.model import Model
from companion.tools import ToolResult

Kind = Literal[
    "checkpoint", "safetensors_index", "config", "tokenizer", "training_log", "chat", "lfs_pointer"
]


class ScanInput(Model):
    """Arguments of `workspace.scan`."""

    paths: list[str] = Field(
        default_factory=list,
        description="Folders to scan; default: the workspace folders (or the current directory).",
    )
    max_files: int | None = Field(default=None, ge=1, description="Stop after this many files.")


class Artifact(Model):
    """One model artifact found on disk."""

    path: str
    kind: Kind
    size: int


class ScanProblem(Model):
    """A path that could not be read, with the reason."""

    path: str
    reason: str


class ScanResult(ToolResult):
    """What `workspace.scan` found, grouped by kind, with unreadable paths listed."""

    roots: list[str]
    artifacts: list[Artifact]
    counts: dict[str, int]
    total_bytes: int
    files_seen: int
    truncated: bool = False
    problems: list[ScanProblem] = Field(default_factory=list)

    def to_markdown(self) -> str:
        """Render as a markdown table."""
        from companion.workspace.render import scan_markdown

        return scan_markdown(self)
