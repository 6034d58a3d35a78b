"""What the problem and hover rules read from one analysed config document.

`analysis.Analysis` provides it; the rules in `problems` and `hovers` see only this
protocol, so they never import `analysis` (which imports them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from companion.architecture.archspec import ArchSpec
    from companion.architecture.jsonc import Member, Parsed
    from companion.architecture.nearest import Neighbour
    from companion.architecture.params import ParamCount


class ConfigDocument(Protocol):
    """A parsed config document with its spec, counts and nearest known architecture."""

    @property
    def parsed(self) -> Parsed:
        """The JSONC tree and its syntax errors."""

    @property
    def folder(self) -> Path | None:
        """The folder holding the document (None for unsaved documents)."""

    @property
    def spec(self) -> ArchSpec | None:
        """The normalised architecture (None when the document is not a usable config)."""

    @property
    def params(self) -> ParamCount | None:
        """The parameter count of the spec."""

    @property
    def neighbour(self) -> Neighbour | None:
        """The nearest known architecture."""

    @property
    def members(self) -> dict[str, Member]:
        """Top-level members by key."""
