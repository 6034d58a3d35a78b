"""Workspace roots: `--root` flags when given, else the client's `roots/list`, else the cwd."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from urllib.parse import unquote, urlparse

import mcp_types as types
from mcp.server.session import ServerSession

log = logging.getLogger("companion.mcp")


def uri_path(uri: str) -> Path | None:
    """The local path of a file:// root URI (None for any other scheme)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


class Roots:
    """The folders tools may read: fixed by flags, or asked of the client and cached."""

    def __init__(self, fixed: list[Path]) -> None:
        self.fixed = [p.expanduser().resolve() for p in fixed]
        self.cached: list[Path] | None = None

    def invalidate(self) -> None:
        """Forget the client's roots (after `notifications/roots/list_changed`)."""
        self.cached = None

    async def get(self, session: ServerSession) -> list[Path]:
        """The roots for one call; a client without roots confines tools to the cwd."""
        if self.fixed:
            return self.fixed
        if self.cached is None:
            self.cached = await self._ask(session) or [Path.cwd().resolve()]
        return self.cached

    async def _ask(self, session: ServerSession) -> list[Path]:
        """The client's file:// roots, or [] when it has none or cannot say."""
        caps = session.client_capabilities
        if caps is None or caps.roots is None:
            return []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # roots are deprecated only from 2026-07-28
                listed: types.ListRootsResult = await session.list_roots()
        except Exception as exc:  # a client that fails roots/list still gets tools, confined
            log.warning("roots/list failed (%s); using the working directory", exc)
            return []
        return [p.resolve() for r in listed.roots if (p := uri_path(str(r.uri))) is not None]
