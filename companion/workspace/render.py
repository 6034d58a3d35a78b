"""Markdown rendering of a workspace scan."""

from __future__ import annotations

from typing import TYPE_CHECKING

from companion.mdtext import inline, inline_path, inline_prose

if TYPE_CHECKING:
    from companion.workspace.schemas import ScanResult


def scan_markdown(r: ScanResult) -> str:
    """Render a scan as a markdown table."""
    lines = [f"# Workspace scan: {', '.join(inline_path(x) for x in r.roots)}", ""]
    if not r.artifacts:
        lines.append("No model artifacts found.")
    else:
        lines += ["| kind | path | size |", "|---|---|---|"]
        lines += [
            f"| {inline(a.kind)} | {inline_path(a.path)} | {human(a.size)} |" for a in r.artifacts
        ]
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(r.counts.items())) or "none"
    lines += ["", f"{r.files_seen} files seen; {counts}; {human(r.total_bytes)} total."]
    if r.truncated:
        lines.append("Scan stopped at the file limit (setting scan_max_files).")
    if r.problems:
        lines.append(f"{len(r.problems)} unreadable paths skipped:")
        lines += [f"- {inline_path(p.path)}: {inline_prose(p.reason)}" for p in r.problems[:20]]
    return "\n".join(lines)


def human(n: int) -> str:
    """Bytes as a short human string."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
