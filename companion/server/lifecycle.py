"""Initialize, settings (initializationOptions + didChangeConfiguration) and log forwarding."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from lsprotocol import types as lsp

from companion.server.core import CompanionServer
from companion.settings import from_editor

_LEVELS = {
    logging.ERROR: lsp.MessageType.Error,
    logging.WARNING: lsp.MessageType.Warning,
    logging.INFO: lsp.MessageType.Info,
}


class ClientLogHandler(logging.Handler):
    """Forward log records to the client as window/logMessage."""

    def __init__(self, server: CompanionServer) -> None:
        super().__init__()
        self.server = server

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record; never raise (the client may be gone or not connected yet)."""
        if getattr(self.server.protocol, "writer", None) is None:
            return  # before start-up completes there is no transport: stderr/file has it
        try:
            kind = _LEVELS.get(record.levelno, lsp.MessageType.Log)
            self.server.window_log_message(
                lsp.LogMessageParams(type=kind, message=self.format(record))
            )
        except Exception:
            pass


def apply_settings(server: CompanionServer, data: Any, source: str) -> None:
    """Validate editor settings; on error tell the user and fall back to defaults."""
    if not data:
        return  # clients send {} or null to mean "nothing changed" (eglot does at start-up)
    settings, problems = from_editor(data)
    keep = (server.settings.home, server.settings.store_path)
    if server.settings.home is not None or server.settings.store_path is not None:
        # Paths fixed on the command line (serve --home) win over editor settings.
        settings = settings.model_copy(update={"home": keep[0], "store_path": keep[1]})
    server.settings = settings
    logging.getLogger("companion").setLevel(settings.log_level)
    errors = [p for p in problems if not p.startswith("unknown setting")]
    if errors:
        server.notify_user(
            f"companion: invalid settings from {source} ({'; '.join(errors)}). "
            "Using defaults; fix these settings in your editor configuration.",
            lsp.MessageType.Error,
        )
    for p in problems:
        logging.getLogger("companion").warning("settings from %s: %s", source, p)


def register(server: CompanionServer) -> None:
    """Register lifecycle features."""
    handler = ClientLogHandler(server)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logging.getLogger("companion").addHandler(handler)

    @server.feature(lsp.INITIALIZE)
    def initialize(ls: CompanionServer, params: lsp.InitializeParams) -> None:
        ls.event_loop = asyncio.get_running_loop()  # for work that providers start in threads
        apply_settings(ls, params.initialization_options, "initializationOptions")

    @server.feature(lsp.EXIT)
    def exit_(ls: CompanionServer, *args: object) -> None:
        # pygls's own exit raises SystemExit inside a callback, which does not stop the read
        # loop while stdin stays open; leave at once (exit code 1 without a prior shutdown).
        logging.getLogger("companion").info("exit requested; exiting")
        logging.shutdown()
        os._exit(0 if ls.protocol._shutdown else 1)

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(
        ls: CompanionServer, params: lsp.DidChangeConfigurationParams
    ) -> None:
        apply_settings(ls, params.settings, "workspace/didChangeConfiguration")
