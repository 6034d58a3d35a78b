"""Editor features for training logs: diagnostics, a hover with ln V, a summary action."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from lsprotocol import types as lsp
from pygls.workspace import TextDocument

from companion.evidence.locate import DocScan, looks_like_log, scan_document
from companion.evidence.vocab import find_beside
from companion.mdtext import inline, inline_path
from companion.server.core import CompanionServer
from companion.server.providers import Provider, show_action

ACTION_TITLE = "Summarize verification evidence"
_MAX_LINE_DIAGNOSTICS = 20


def _path(doc: TextDocument) -> Path:
    """The document's file path."""
    return Path(doc.path)


def _line_range(doc: TextDocument, line: int) -> lsp.Range:
    """The whole of one line."""
    lines = doc.lines
    width = len(lines[line].rstrip("\r\n")) if 0 <= line < len(lines) else 0
    return lsp.Range(lsp.Position(line, 0), lsp.Position(line, width))


class EvidenceProvider(Provider):
    """Training-log documents (any format the evidence engine reads as text)."""

    name = "evidence"

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int | None, DocScan]] = {}

    def _scan(self, doc: TextDocument) -> DocScan:
        """Scan once per document version."""
        cached = self._cache.get(doc.uri)
        if cached is not None and cached[0] == doc.version and doc.version is not None:
            return cached[1]
        scan = scan_document(doc.source, _path(doc))
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[doc.uri] = (doc.version, scan)
        return scan

    def matches(self, doc: TextDocument) -> bool:
        """Logs are recognised by content (or an LFS pointer with a log-like name)."""
        return looks_like_log(doc.source, _path(doc))

    def diagnostics(self, ls: CompanionServer, doc: TextDocument) -> list[lsp.Diagnostic]:
        """LFS pointer, unparseable lines (counted) and NaN/inf losses."""
        scan = self._scan(doc)
        out: list[lsp.Diagnostic] = []
        if scan.lfs_message is not None:
            return [
                self._diag(doc, 0, scan.lfs_message, lsp.DiagnosticSeverity.Error, "lfs-pointer")
            ]
        if scan.error is not None and scan.is_log:
            out.append(self._diag(doc, 0, scan.error, lsp.DiagnosticSeverity.Warning, "log-error"))
        total = scan.unparseable
        for line in scan.unparseable_lines[:_MAX_LINE_DIAGNOSTICS]:
            out.append(
                self._diag(
                    doc,
                    line,
                    f"Unparseable log line ({total} in this file).",
                    lsp.DiagnosticSeverity.Warning,
                    "unparseable",
                )
            )
        if total > len(scan.unparseable_lines):
            unlocated = total - len(scan.unparseable_lines)
            out.append(
                self._diag(
                    doc,
                    0,
                    f"{total} unparseable lines in this file ({unlocated} not shown).",
                    lsp.DiagnosticSeverity.Warning,
                    "unparseable",
                )
            )
        count = len(scan.nonfinite_lines)
        for line in scan.nonfinite_lines[:_MAX_LINE_DIAGNOSTICS]:
            out.append(
                self._diag(
                    doc,
                    line,
                    f"Loss is NaN or inf here ({count} such lines"
                    + (" or more" if count >= 20 else "")
                    + ").",
                    lsp.DiagnosticSeverity.Warning,
                    "nonfinite-loss",
                )
            )
        return out

    @staticmethod
    def _diag(
        doc: TextDocument, line: int, message: str, severity: lsp.DiagnosticSeverity, code: str
    ) -> lsp.Diagnostic:
        """A diagnostic over one line."""
        return lsp.Diagnostic(
            range=_line_range(doc, line),
            message=message,
            severity=severity,
            code=code,
            source="companion.evidence",
        )

    def hover(self, ls: CompanionServer, doc: TextDocument, pos: lsp.Position) -> lsp.Hover | None:
        """On the first loss line: the first loss against ln V."""
        scan = self._scan(doc)
        if scan.first_line is None or pos.line != scan.first_line or scan.first_loss is None:
            return None
        vocab = find_beside(_path(doc))
        size, source = (vocab.size, vocab.source) if vocab else (scan.vocab, scan.vocab_source)
        step = "" if scan.first_step is None else f" at step {scan.first_step:g}"
        text = f"**First loss** {scan.first_loss:.4f}{step} ({inline(scan.format)})\n\n"
        if size:
            ln_v = math.log(size)
            text += (
                f"**ln V** = {ln_v:.4f} (V = {size:,}; {inline_path(source)}); "
                "the first loss is "
                f"{scan.first_loss - ln_v:+.3f} nats from ln V. A random init starts at "
                "≈ ln V; fine-tuning starts far below it."
            )
        else:
            text += (
                "**ln V** unknown: put config.json or tokenizer.json beside the log, or run "
                "`companion evidence LOG --vocab-size N`."
            )
        return lsp.Hover(
            contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text),
            range=_line_range(doc, scan.first_line),
        )

    def code_actions(
        self, ls: CompanionServer, doc: TextDocument, params: lsp.CodeActionParams
    ) -> list[lsp.CodeAction]:
        """Run `evidence.summarize` with a picture and open the markdown."""
        if self._scan(doc).lfs_message is not None:
            return []
        path = _path(doc)
        results = ls.results_dir or (ls.settings.data_dir() / "results")
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
        args: dict[str, object] = {
            "paths": [str(path)],
            "plot": str(results / f"evidence-{path.stem}-{digest}.png"),
            "overwrite": True,  # the server's own file in its results folder, named per log
        }
        return [show_action(ACTION_TITLE, "evidence.summarize", args, lsp.CodeActionKind.Source)]


PROVIDER = EvidenceProvider()
