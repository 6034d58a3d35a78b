"""Client-side helpers for chat tests: raw progress capture, applyEdit, custom requests."""

from __future__ import annotations

from typing import Any

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from companion.server.chat import plain  # the same namedtuple -> JSON conversion


class ChatRecorder:
    """Records raw `$/progress` values per token and applies workspace/applyEdit to texts."""

    def __init__(self, client: LanguageClient) -> None:
        self.progress: dict[str | int, list[dict[str, Any]]] = {}
        self.texts: dict[str, str] = {}
        self.edits: list[tuple[str, str]] = []
        fm = client.protocol.fm

        def on_progress(params: Any) -> None:
            value = plain(params.value) if hasattr(params.value, "_asdict") else params.value
            self.progress.setdefault(params.token, []).append(dict(value))

        def on_apply(params: lsp.ApplyWorkspaceEditParams) -> lsp.ApplyWorkspaceEditResult:
            for uri, edits in (params.edit.changes or {}).items():
                for e in edits:
                    self.texts[uri] = apply_edit(self.texts.get(uri, ""), e.range, e.new_text)
                    self.edits.append((uri, e.new_text))
            return lsp.ApplyWorkspaceEditResult(applied=True)

        fm.features[lsp.PROGRESS] = on_progress
        if lsp.WORKSPACE_APPLY_EDIT not in fm.features:
            client.feature(lsp.WORKSPACE_APPLY_EDIT)(on_apply)

    def deltas(self, token: str | int) -> str:
        """The streamed answer text on a token."""
        return "".join(v.get("delta", "") for v in self.progress.get(token, []))


def apply_edit(text: str, rng: lsp.Range, new_text: str) -> str:
    """Apply one edit to an ASCII text (LSP positions)."""
    lines = text.split("\n")

    def offset(pos: lsp.Position) -> int:
        return sum(len(line) + 1 for line in lines[: pos.line]) + pos.character

    start, end = offset(rng.start), offset(rng.end)
    return text[:start] + new_text + text[end:]


async def chat(client: LanguageClient, params: dict[str, Any], msg_id: Any = None) -> Any:
    """Send companion/chat and return the plain result."""
    result = await client.protocol.send_request_async("companion/chat", params, msg_id=msg_id)
    return plain(result)
