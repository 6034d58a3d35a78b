"""Front door: the `companion` command (tool subcommands, chat, demo, serve)."""

from companion.cli.main import main

__all__ = ["main"]
