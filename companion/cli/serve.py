"""`companion serve`: run the language server over stdio or loopback TCP."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path


def _configure_logging(log_file: Path | None) -> None:
    """Logs go to a file or stderr; stdout carries nothing but LSP traffic."""
    handler: logging.Handler = (
        logging.FileHandler(log_file, encoding="utf-8")
        if log_file
        else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("pygls").setLevel(logging.WARNING)


def serve(tcp: bool = False, port: int = 2087, log_file: Path | None = None) -> int:
    """Run until the client disconnects; exit promptly even if worker threads are busy."""
    _configure_logging(log_file)
    from companion import __version__
    from companion.server import build_server

    server = build_server()
    log = logging.getLogger("companion.serve")
    where = "stdio" if not tcp else f"127.0.0.1 (port {port or 'chosen by the system'})"
    log.info("companion %s serving on %s", __version__, where)
    if tcp:
        # pygls logs "Serving on ('127.0.0.1', N)" once bound: the real port, even for --port 0.
        logging.getLogger("pygls.server").setLevel(logging.INFO)
        server.start_tcp("127.0.0.1", port)
    else:
        server.start_io()
    log.info("client disconnected; exiting")
    logging.shutdown()
    with contextlib.suppress(OSError, ValueError):  # the client may have closed the pipe
        sys.stdout.flush()
    # Worker threads (a long audit) must not keep a server whose client is gone alive.
    os._exit(0)
