"""Document providers: per-kind editor intelligence (config.json, training logs, *.chat.md).

A provider answers for the documents it `matches`; `documents.py` fans each LSP request out
to the matching providers (its PROVIDERS list). Provider methods are synchronous, fast and must
only raise CompanionError.
"""

from __future__ import annotations

from lsprotocol import types as lsp
from pygls.workspace import TextDocument

from companion.server.core import CompanionServer


class Provider:
    """Base class: override what the document kind supports."""

    name = "provider"

    def matches(self, doc: TextDocument) -> bool:
        """Whether this provider handles the document (decide by content where possible)."""
        return False

    def diagnostics(self, ls: CompanionServer, doc: TextDocument) -> list[lsp.Diagnostic]:
        """Problems in the document."""
        return []

    def hover(self, ls: CompanionServer, doc: TextDocument, pos: lsp.Position) -> lsp.Hover | None:
        """Hover at a position."""
        return None

    def code_lenses(self, ls: CompanionServer, doc: TextDocument) -> list[lsp.CodeLens]:
        """Code lenses for the document."""
        return []

    def code_actions(
        self, ls: CompanionServer, doc: TextDocument, params: lsp.CodeActionParams
    ) -> list[lsp.CodeAction]:
        """Code actions for a range."""
        return []


def wants(params: lsp.CodeActionParams, kind: str) -> bool:
    """Whether the client's `only` filter admits actions of `kind` (a kind or a sub-kind of it)."""
    only = params.context.only
    return not only or any(kind == k or kind.startswith(f"{k}.") for k in only)


def show_action(title: str, tool: str, args: dict[str, object], kind: str) -> lsp.CodeAction:
    """A code action that runs a tool and opens its markdown result (`companion.show`)."""
    return lsp.CodeAction(
        title=title,
        kind=kind,
        command=lsp.Command(
            title=title,
            command="companion.show",
            arguments=[{"tool": tool, "args": args, "title": title}],
        ),
    )
