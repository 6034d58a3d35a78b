"""The "likely parent: X (p = …)" code lens: identify runs in the background, cached by folder.

The first request for a folder starts `fingerprint.identify` in a worker thread and shows
nothing; when it finishes, the client is asked to refresh its lenses. Results are kept per
folder until the folder's files or the store change (cache key: file stats + store mtime).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

from lsprotocol import types as lsp

from companion.errors import CompanionError
from companion.server.core import CompanionServer

log = logging.getLogger(__name__)
Key = tuple[tuple[str, int, int], ...]


def _key(folder: Path, store: Path) -> Key:
    """What invalidates a folder's answer: its tensor files and the store file."""
    paths = [*sorted(folder.glob("*.safetensors")), store]
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(p), -1, -1))
    return tuple(out)


class ParentLens:
    """Background identify per checkpoint folder, with a small cache."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[str, tuple[Key, str | None]] = {}
        self._running: set[str] = set()

    def lenses(self, ls: CompanionServer, folder: Path, where: lsp.Range) -> list[lsp.CodeLens]:
        """The lens for a folder holding a checkpoint (empty while it is being computed)."""
        loop = ls.event_loop
        if loop is None or not any(folder.glob("*.safetensors")):
            return []
        key = _key(folder, ls.settings.resolved_store_path())
        with self._lock:
            hit = self._done.get(str(folder))
            if hit is None or hit[0] != key:
                if str(folder) not in self._running:
                    self._running.add(str(folder))
                    threading.Thread(
                        target=self._compute, args=(ls, folder, key, loop), daemon=True
                    ).start()
                return []
        title = hit[1]
        if title is None:
            return []
        args = {"tool": "fingerprint.identify", "args": {"path": str(folder)}, "title": title}
        cmd = lsp.Command(title=title, command="companion.show", arguments=[args])
        return [lsp.CodeLens(range=where, command=cmd)]

    def _compute(
        self, ls: CompanionServer, folder: Path, key: Key, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Run identify off the event loop, cache the title, ask the client to refresh."""
        from companion.fingerprint.schemas import IdentifyResult
        from companion.toolbox import run_tool

        title: str | None = None
        try:
            result = run_tool("fingerprint.identify", {"path": str(folder)}, ls.tool_context())
            if isinstance(result, IdentifyResult):
                best = result.parent
                name = Path(best.path).name if best else None
                title = f"likely parent: {name} (p = {best.p:.2g})" if best else "no known parent"
        except CompanionError as exc:
            log.info("parent lens for %s: %s", folder, exc)
        finally:
            with self._lock:
                self._done[str(folder)] = (key, title)
                self._running.discard(str(folder))
        caps = ls.client_capabilities.workspace
        lens_caps = caps.code_lens if caps else None
        if lens_caps and lens_caps.refresh_support and not loop.is_closed():
            # Requests go out from the event loop's thread only.
            loop.call_soon_threadsafe(ls.workspace_code_lens_refresh, None)


PARENT_LENS = ParentLens()
