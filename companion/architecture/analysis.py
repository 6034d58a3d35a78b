"""Editor analysis of a config document (pure): problems with safe fixes, and key hovers.

The problems come from the rule table in `problems`, the hover facts from the one in
`hovers`; both read an `Analysis` through the `document.ConfigDocument` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from companion.architecture.archspec import ArchSpec
from companion.architecture.hovers import hover_text
from companion.architecture.jsonc import Member, Parsed, parse, to_python
from companion.architecture.nearest import Neighbour, nearest
from companion.architecture.params import ParamCount, count_params
from companion.architecture.problems import Fix, Problem, Severity, find_problems
from companion.architecture.spec import build_spec
from companion.architecture.tokenizer import sibling_tokenizer_size
from companion.errors import CompanionError

__all__ = ["Analysis", "Fix", "Problem", "Severity", "analyse", "sibling_tokenizer_size"]


@dataclass
class Analysis:
    """Everything the editor shows for one version of a config document."""

    parsed: Parsed
    folder: Path | None
    spec: ArchSpec | None = None
    params: ParamCount | None = None
    neighbour: Neighbour | None = None
    members: dict[str, Member] = field(default_factory=dict)
    _problems: list[Problem] | None = None

    def problems(self) -> list[Problem]:
        """Syntax and semantic problems (computed once; may read a sibling tokenizer)."""
        if self._problems is None:
            self._problems = find_problems(self)
        return self._problems

    def hover(self, offset: int) -> tuple[str, int, int] | None:
        """Markdown and key span for the member under `offset`."""
        chain = self.parsed.path_at(offset)
        if not chain:
            return None
        m = chain[-1] if len(chain) > 1 else chain[0]
        parent = chain[-2].key if len(chain) > 1 else None
        text = hover_text(m.key, to_python(m.value), parent, self)
        if text is None and len(chain) > 1:
            m = chain[0]
            text = hover_text(m.key, to_python(m.value), None, self)
        return (text, m.key_start, m.key_end) if text else None


def analyse(text: str, folder: Path | None) -> Analysis:
    """Parse and understand a config text; never raises."""
    parsed = parse(text)
    a = Analysis(parsed=parsed, folder=folder)
    root = parsed.root
    if root is None or root.kind != "object":
        return a
    a.members = {m.key: m for m in root.members}
    try:
        a.spec = build_spec(to_python(root))
    except CompanionError:
        return a
    a.params = count_params(a.spec)
    a.neighbour = nearest(a.spec, 1)[0]
    return a
