"""The `workspace.scan` tool declaration."""

from __future__ import annotations

from pathlib import Path

from companion.tools import ToolContext, tool
from companion.workspace.engine import scan
from companion.workspace.schemas import ScanInput, ScanResult


@tool(
    "workspace.scan",
    description="List model artifacts (checkpoints, configs, tokenizers, training logs) "
    "under the workspace folders, by kind, with sizes.",
    read_only=True,
    cli="scan",
    positional=("paths",),
)
def scan_tool(args: ScanInput, ctx: ToolContext) -> ScanResult:
    """Tool entry point for `workspace.scan`."""
    roots = [ctx.path(p) for p in args.paths] or ctx.roots or [Path.cwd()]
    return scan(roots, args.max_files or ctx.settings.scan_max_files, ctx.job())
