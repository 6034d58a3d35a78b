"""The LSP document path, in process: each provider's diagnostics, hover and lenses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lsprotocol import types as lsp
from pygls.workspace import TextDocument

from companion.server.config_provider import ConfigProvider
from companion.server.core import CompanionServer
from companion.server.evidence_provider import EvidenceProvider
from companion.server.providers import Provider

Target = Callable[[bytes], object]


def _document_target(provider: Provider, uri: str, language: str) -> Target:
    """Open fuzzed text as a document and ask the provider everything an editor would."""
    ls = CompanionServer()

    def run(data: bytes) -> object:
        text = data.decode("utf-8", "replace")
        doc = TextDocument(uri, text, version=1, language_id=language)
        if not provider.matches(doc):
            return None
        provider.diagnostics(ls, doc)
        lines = max(1, text.count("\n"))
        for line in (0, lines // 2, lines - 1):
            provider.hover(ls, doc, lsp.Position(line, 4))
        return provider.code_lenses(ls, doc)

    return run


def document_targets(
    work: Path, configs: list[bytes], logs: list[bytes]
) -> dict[str, tuple[Target, list[bytes]]]:
    """The config and log providers on fuzzed documents."""
    (work / "docs").mkdir(exist_ok=True)
    cfg_uri = (work / "docs" / "config.json").as_uri()
    log_uri = (work / "docs" / "train.log").as_uri()
    state_uri = (work / "docs" / "trainer_state.json").as_uri()
    return {
        "lsp-config": (_document_target(ConfigProvider(), cfg_uri, "json"), configs),
        "lsp-log": (_document_target(EvidenceProvider(), log_uri, "log"), logs),
        "lsp-trainer-state": (
            _document_target(EvidenceProvider(), state_uri, "json"),
            [logs[-3]] if len(logs) >= 3 else logs,
        ),
    }
