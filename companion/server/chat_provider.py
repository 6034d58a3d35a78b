"""The chat provider: `*.chat.md` gets an "Ask companion" action and lens (answered by
`chat_file`); model configs and training logs get "Explain this architecture" / "Explain this
evidence" actions (companion.chat.explain).
"""

from __future__ import annotations

from lsprotocol import types as lsp
from pygls.workspace import TextDocument

from companion.server.chat_file import parse_chat
from companion.server.config_provider import PROVIDER as CONFIG
from companion.server.core import CompanionServer
from companion.server.evidence_provider import PROVIDER as EVIDENCE
from companion.server.providers import Provider, wants

ASK = "Ask companion"


def _looks_like_config(doc: TextDocument) -> bool:
    """A model config, as the config provider recognises it (by content)."""
    return CONFIG.matches(doc)


def _looks_like_log(doc: TextDocument) -> bool:
    """A training log, as the evidence provider recognises it (by content)."""
    return EVIDENCE.matches(doc)


class ChatProvider(Provider):
    """Chat files, plus "explain" actions on configs and training logs."""

    name = "chat"

    def matches(self, doc: TextDocument) -> bool:
        """Chat files, model configs and training logs."""
        return doc.uri.endswith(".chat.md") or _looks_like_config(doc) or _looks_like_log(doc)

    def _ask(self, doc: TextDocument) -> lsp.Command | None:
        """The "Ask companion" command when the chat file has a pending question."""
        if not doc.uri.endswith(".chat.md") or parse_chat(doc.source)[1] is None:
            return None
        return lsp.Command(title=ASK, command="companion.chat.ask", arguments=[{"uri": doc.uri}])

    def code_lenses(self, ls: CompanionServer, doc: TextDocument) -> list[lsp.CodeLens]:
        """A lens on the pending question's heading."""
        command = self._ask(doc)
        line = parse_chat(doc.source)[2] if command else None
        if command is None or line is None:
            return []
        pos = lsp.Position(line=line, character=0)
        return [lsp.CodeLens(range=lsp.Range(pos, pos), command=command)]

    def code_actions(
        self, ls: CompanionServer, doc: TextDocument, params: lsp.CodeActionParams
    ) -> list[lsp.CodeAction]:
        """Ask companion (chat files) or Explain this architecture/evidence."""
        actions: list[lsp.CodeAction] = []
        command = self._ask(doc)
        if command is not None and wants(params, lsp.CodeActionKind.QuickFix):
            actions.append(
                lsp.CodeAction(title=ASK, kind=lsp.CodeActionKind.QuickFix, command=command)
            )
        for check, kind in ((_looks_like_config, "architecture"), (_looks_like_log, "evidence")):
            if check(doc) and wants(params, lsp.CodeActionKind.Refactor):
                title = f"Explain this {kind}"
                explain = lsp.Command(
                    title=title,
                    command="companion.chat.explain",
                    arguments=[{"uri": doc.uri, "kind": kind}],
                )
                actions.append(
                    lsp.CodeAction(title=title, kind=lsp.CodeActionKind.Refactor, command=explain)
                )
        return actions


PROVIDER = ChatProvider()
