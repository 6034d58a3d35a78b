"""Hugging Face model configs in the editor: hover, code lens, diagnostics, code actions."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from lsprotocol import types as lsp
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from companion.architecture.analysis import Analysis, Problem, analyse
from companion.architecture.jsonc import to_python
from companion.architecture.params import human
from companion.errors import CompanionError
from companion.server.core import CompanionServer
from companion.server.parent_lens import PARENT_LENS
from companion.server.providers import Provider, show_action, wants

_MAX_BYTES = 16 * 1024 * 1024
REMOTES_FILE = Path(".companion/remotes.txt")  # one URL or hf:// reference per line, # comments
_MAX_REMOTES_BYTES = 64 * 1024
_MAX_URL_ACTIONS = 8
URL_AUDIT_ROLES = ("norm", "attn")  # what a URL audit from the editor reads of the remote model
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_SEVERITY = {
    "error": lsp.DiagnosticSeverity.Error,
    "warning": lsp.DiagnosticSeverity.Warning,
    "information": lsp.DiagnosticSeverity.Information,
    "hint": lsp.DiagnosticSeverity.Hint,
}


def _fs_path(uri: str) -> Path | None:
    """The file path of a file:// URI, or None."""
    p = to_fs_path(uri) if uri.startswith("file:") else None
    return Path(p) if p else None


def _looks_like_config(text: str) -> bool:
    """Decide by content: JSON object with model_type or the core size keys."""
    head = text[:65536]
    if not head.lstrip().startswith(("{", "//", "/*")):
        return False
    if '"model_type"' in head:
        return True
    return ('"hidden_size"' in head and '"num_attention_heads"' in head) or (
        '"n_embd"' in head and '"n_layer"' in head
    )


def remote_targets(roots: list[Path], a: Analysis) -> list[str]:
    """URLs to audit against: `.companion/remotes.txt` lines, then `_name_or_path` as hf://."""
    found: list[str] = []
    for root in roots:
        listed = root / REMOTES_FILE
        try:
            text = (
                listed.read_text(encoding="utf-8")[:_MAX_REMOTES_BYTES] if listed.is_file() else ""
            )
        except (OSError, UnicodeDecodeError):
            continue  # an unreadable list offers nothing rather than breaking code actions
        for line in text.splitlines():
            url = line.split("#", 1)[0].strip()
            if url.startswith(("https://", "http://", "hf://")) and " " not in url:
                found.append(url)
    hub = _hub_name(a)
    return list(dict.fromkeys([*found, *([hub] if hub else [])]))[:_MAX_URL_ACTIONS]


def _hub_name(a: Analysis) -> str | None:
    """The config's `_name_or_path` as hf://ORG/NAME when it looks like one (not a local path)."""
    member = a.members.get("_name_or_path")
    name = to_python(member.value) if member is not None else None
    if not isinstance(name, str) or not _HUB_NAME.fullmatch(name):
        return None
    local = a.folder is not None and (a.folder / name).exists()
    return None if local else f"hf://{name}"


def _url_audit_actions(urls: list[str], folder: Path) -> list[lsp.CodeAction]:
    """'Audit weights against a URL…' (A = the remote reference, B = this model's folder).

    Code actions cannot prompt, so the URLs come from the workspace; they run unconfined like
    the CLI (only chat and agents are refused URLs). Only the norm and attention roles are
    audited, so a large remote model costs a small part of its bytes.
    """
    return [
        show_action(
            f"Audit weights against a URL… {url}",
            "audit.compare",
            {"a": url, "b": str(folder), "roles": list(URL_AUDIT_ROLES)},
            lsp.CodeActionKind.Source,
        )
        for url in urls
    ]


class ConfigProvider(Provider):
    """Model config.json documents (recognised by content, JSON or JSONC)."""

    name = "config"

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, Analysis]] = {}
        self._lock = threading.Lock()
        self._scan: tuple[float, list[tuple[str, str]]] = (0.0, [])

    def matches(self, doc: TextDocument) -> bool:
        """JSON-ish documents whose content looks like a model config."""
        lang = (doc.language_id or "").lower()
        if lang not in ("json", "jsonc") and not doc.uri.endswith((".json", ".jsonc")):
            return False
        text = doc.source
        return len(text) <= _MAX_BYTES and _looks_like_config(text)

    def analysis(self, doc: TextDocument) -> Analysis:
        """The (cached) analysis of the document's current text."""
        text = doc.source
        key = hash(text)
        with self._lock:
            hit = self._cache.get(doc.uri)
        if hit is not None and hit[0] == key:
            return hit[1]
        path = _fs_path(doc.uri)
        result = analyse(text, path.parent if path else None)
        with self._lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[doc.uri] = (key, result)
        return result

    def _range(self, a: Analysis, start: int, end: int) -> lsp.Range:
        """Offsets to an LSP range."""
        sl, sc = a.parsed.position(start)
        el, ec = a.parsed.position(end)
        return lsp.Range(lsp.Position(sl, sc), lsp.Position(el, ec))

    def _diagnostic(self, a: Analysis, p: Problem) -> lsp.Diagnostic:
        """A problem as an LSP diagnostic."""
        return lsp.Diagnostic(
            range=self._range(a, p.start, p.end),
            message=p.message,
            severity=_SEVERITY[p.severity],
            source="companion",
            code=p.code,
            tags=[lsp.DiagnosticTag.Deprecated] if p.deprecated else None,
        )

    def diagnostics(self, ls: CompanionServer, doc: TextDocument) -> list[lsp.Diagnostic]:
        """Syntax errors, head/KV mismatches, vocab vs tokenizer, unknown and deprecated keys."""
        a = self.analysis(doc)
        return [self._diagnostic(a, p) for p in a.problems()]

    def hover(self, ls: CompanionServer, doc: TextDocument, pos: lsp.Position) -> lsp.Hover | None:
        """Meaning and in-context value of the key under the cursor."""
        a = self.analysis(doc)
        found = a.hover(a.parsed.offset(pos.line, pos.character))
        if found is None:
            return None
        text, start, end = found
        return lsp.Hover(
            contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text),
            range=self._range(a, start, end),
        )

    def code_lenses(self, ls: CompanionServer, doc: TextDocument) -> list[lsp.CodeLens]:
        """At the top: family, ≈ total/active parameters, nearest known architecture."""
        a = self.analysis(doc)
        if a.spec is None or a.params is None:
            return []
        top = lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
        path = _fs_path(doc.uri)
        p = a.params
        partial = " (partial)" if not p.complete else ""
        title = f"{a.spec.family} · ≈ {human(p.total)} params, {human(p.active)} active{partial}"
        lenses = [lsp.CodeLens(range=top, command=self._show(title, "arch.params", path))]
        if a.neighbour is not None:
            n = a.neighbour
            label = "same as" if n.distance == 0 else "nearest"
            title = f"{label}: {n.name} (distance {n.distance:.2f})"
            lenses.append(lsp.CodeLens(range=top, command=self._show(title, "arch.nearest", path)))
        if path is not None:  # "likely parent: X (p = …)", computed in the background
            lenses += PARENT_LENS.lenses(ls, path.parent, top)
        return lenses

    def _show(self, title: str, tool: str, path: Path | None) -> lsp.Command | None:
        """A lens command opening a tool's markdown result (none for unsaved documents)."""
        if path is None:
            return lsp.Command(title=title, command="")
        args = {"tool": tool, "args": {"path": str(path)}, "title": title}
        return lsp.Command(title=title, command="companion.show", arguments=[args])

    def code_actions(
        self, ls: CompanionServer, doc: TextDocument, params: lsp.CodeActionParams
    ) -> list[lsp.CodeAction]:
        """Quick fixes for problems in range, then the config's source actions."""
        a = self.analysis(doc)
        out: list[lsp.CodeAction] = []
        if wants(params, lsp.CodeActionKind.QuickFix):
            out += self._fixes(a, doc, params.range)
        if a.spec is None or not wants(params, lsp.CodeActionKind.Source):
            return out
        return out + self._sources(ls, doc)

    def _fixes(self, a: Analysis, doc: TextDocument, rng: lsp.Range) -> list[lsp.CodeAction]:
        """Safe quick fixes for problems overlapping the requested range."""
        lo = a.parsed.offset(rng.start.line, rng.start.character)
        hi = a.parsed.offset(rng.end.line, rng.end.character)
        out = []
        for p in a.problems():
            if p.fix is None or p.end < lo or p.start > hi:
                continue
            edit = lsp.TextEdit(
                range=self._range(a, p.fix.start, p.fix.end), new_text=p.fix.new_text
            )
            out.append(
                lsp.CodeAction(
                    title=p.fix.title,
                    kind=lsp.CodeActionKind.QuickFix,
                    diagnostics=[self._diagnostic(a, p)],
                    is_preferred=True,
                    edit=lsp.WorkspaceEdit(changes={doc.uri: [edit]}),
                )
            )
        return out

    def _sources(self, ls: CompanionServer, doc: TextDocument) -> list[lsp.CodeAction]:
        """Count, compare, audit and explain actions (results open as markdown)."""
        path = _fs_path(doc.uri)
        if path is None:
            return []
        kind = lsp.CodeActionKind.Source
        me: dict[str, object] = {"path": str(path)}
        out = [
            show_action("Count parameters", "arch.params", me, kind),
            show_action("Compare with known architectures", "arch.nearest", {**me, "k": 8}, kind),
        ]
        configs, checkpoints = self._workspace_artifacts(ls)
        for other in configs:
            if Path(other) != path:
                title = f"Compare with… {self._rel(ls, other)}"
                out.append(show_action(title, "arch.diff", {"a": str(path), "b": other}, kind))
        out += self._audit_actions(ls, path, checkpoints)
        if any(Path(c).parent == path.parent for c in checkpoints):
            out += _url_audit_actions(remote_targets(ls.roots(), self.analysis(doc)), path.parent)
        out += self._investigate_actions(ls, path, configs, checkpoints)
        # "Explain this architecture" comes from the chat provider (chat_provider.py).
        return out

    def _audit_actions(
        self, ls: CompanionServer, path: Path, checkpoints: list[str]
    ) -> list[lsp.CodeAction]:
        """'Audit weights against…' the workspace's other checkpoints."""
        folder = path.parent
        if not any(Path(c).parent == folder for c in checkpoints):
            return []
        others = sorted({str(Path(c).parent) for c in checkpoints if Path(c).parent != folder})
        return [
            show_action(
                f"Audit weights against… {self._rel(ls, o)}",
                "audit.compare",
                {"a": o, "b": str(folder)},  # A = reference, B = this model
                lsp.CodeActionKind.Source,
            )
            for o in others[:8]
        ]

    def _investigate_actions(
        self, ls: CompanionServer, path: Path, configs: list[str], checkpoints: list[str]
    ) -> list[lsp.CodeAction]:
        """'Investigate against…' the other model folders: every engine, one dossier."""
        folder = path.parent
        others = sorted({str(Path(p).parent) for p in [*configs, *checkpoints]} - {str(folder)})
        out = []
        for o in others[:8]:
            html = folder / f"dossier-vs-{Path(o).name}.html"
            title = f"Investigate against… {self._rel(ls, o)}"
            spec = {
                "tool": "case.investigate",
                "args": {"a": o, "b": str(folder), "html": str(html)},  # A = reference
                "title": title,
                "open_external": str(html),  # the HTML dossier opens in the browser too
            }
            command = lsp.Command(title=title, command="companion.show", arguments=[spec])
            out.append(lsp.CodeAction(title=title, kind=lsp.CodeActionKind.Source, command=command))
        return out

    def _rel(self, ls: CompanionServer, p: str) -> str:
        """A path relative to the first workspace root, when inside it."""
        for root in ls.roots():
            try:
                return str(Path(p).relative_to(root))
            except ValueError:
                continue
        return p

    def _workspace_artifacts(self, ls: CompanionServer) -> tuple[list[str], list[str]]:
        """Configs and checkpoints in the workspace (bounded scan, cached for 5 s)."""
        from companion.workspace.engine import scan

        stamp, found = self._scan
        if time.monotonic() - stamp > 5.0:
            roots = [r for r in ls.roots() if r.is_dir()]
            try:
                res = scan(roots, max_files=5000) if roots else None
            except CompanionError:  # a vanished root must not break code actions
                res = None
            found = [(x.kind, x.path) for x in res.artifacts] if res else []
            self._scan = (time.monotonic(), found)
        configs = [p for k, p in found if k == "config"][:8]
        ckpts = [p for k, p in found if k in ("checkpoint", "safetensors_index")]
        return configs, ckpts


PROVIDER = ConfigProvider()
