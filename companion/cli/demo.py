"""`companion demo`: build an example workspace with the project's own generators, run every tool.

Each engine has a demo section (`<engine>/demo.py`) with `build(workspace)`, which writes its
example files, and `run(workspace, ctx, show)`, which runs its tools and shows the results.

The demo records into the store every other command reads (the user's default store, or
COMPANION_HOME / COMPANION_STORE_PATH): the `companion query` and `companion verify ID` it
prints at the end then find its records from any folder, with no extra environment. Each
result's full report goes to `<workspace>/reports/`; the terminal gets one line per question.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from companion.architecture import demo as architecture_demo
from companion.audit import demo as audit_demo
from companion.case import demo as case_demo
from companion.evidence import demo as evidence_demo
from companion.llm import demo as llm_demo
from companion.settings import Settings
from companion.store import demo as store_demo
from companion.tools import ToolResult
from companion.workspace import demo as workspace_demo

DEMO_SECTIONS = (
    workspace_demo,
    architecture_demo,
    evidence_demo,
    audit_demo,
    case_demo,
    store_demo,
    llm_demo,
)


@dataclass
class Shown:
    """One result the demo showed: its question, answer, record id and report file."""

    title: str
    answer: str
    record_id: str | None
    kind: str
    report: Path


def _slug(title: str) -> str:
    """A file name for a section title."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "result"


def _answer(result: ToolResult) -> str:
    """The short answer of a result: its verdict, or what the result is."""
    verdict = result.facts().verdict
    claim = getattr(result, "claim_verdict", None)
    if verdict is not None:
        return str(verdict) + ("" if claim is None else f" (claim: {claim})")
    status = getattr(result, "status", None)
    return str(status) if status is not None else "see report"


def command_name() -> str:
    """How the user invoked companion (e.g. `.venv/bin/companion`), for commands to copy."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("companion")
    if argv0.name != "companion":
        return "companion"
    try:
        return os.path.relpath(argv0) if argv0.is_file() and not argv0.is_absolute() else str(argv0)
    except ValueError:
        return str(argv0)


def run_demo(folder: Path | None) -> int:
    """Build the example workspace in `folder` (or a temp dir), run every tool, summarize."""
    from rich.console import Console

    from companion.toolbox import context

    console, err = Console(), Console(stderr=True)
    workspace = (folder or Path(tempfile.mkdtemp(prefix="companion-demo-"))).resolve()
    reports = workspace / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]companion demo[/bold]: example workspace in {workspace}")
    for section in DEMO_SECTIONS:
        section.build(workspace)
    settings = Settings()
    ctx = context(settings, [workspace])
    shown: list[Shown] = []

    def show(title: str, result: ToolResult) -> None:
        report = reports / f"{len(shown) + 1:02d}-{_slug(title)}.md"
        report.write_text(f"# {title}\n\n{result.to_markdown()}", encoding="utf-8")
        kind = type(result).__name__
        shown.append(Shown(title, _answer(result), result.record_id, kind, report))
        if err.is_terminal:
            err.print(f"  [green]✓[/green] {title}")

    for section in DEMO_SECTIONS:
        section.run(workspace, ctx, show)
    _summary(console, shown, workspace, settings)
    return 0


def _summary(console: object, shown: list[Shown], workspace: Path, settings: Settings) -> None:
    """Each question with its answer, the dossier, then the commands to try next."""
    from rich.console import Console

    assert isinstance(console, Console)
    console.print("\n[bold]What the demo asked[/bold]")
    for s in shown:
        rid = f" [dim]({s.record_id})[/dim]" if s.record_id else ""
        console.print(f"- {s.title}: [bold]{s.answer}[/bold]{rid}", highlight=False)
    dossier = workspace / "reports" / case_demo.HTML_NAME
    if dossier.is_file():
        console.print(f"Dossier (HTML, opens offline): {dossier}", highlight=False)
    console.print(f"Full reports: {workspace / 'reports'}", highlight=False)
    console.print(f"Store: {settings.resolved_store_path()}", highlight=False)
    verifiable = next((s.record_id for s in shown if s.kind == "CaseResult" and s.record_id), None)
    verifiable = verifiable or next((s.record_id for s in shown if s.record_id), None)
    cmd = command_name()
    console.print("Try next:", highlight=False)
    console.print(f"  {cmd} query", highlight=False, soft_wrap=True)
    if verifiable:
        console.print(f"  {cmd} verify {verifiable}", highlight=False, soft_wrap=True)
    console.print(
        f"  {cmd} serve   (open {workspace} in your editor)", highlight=False, soft_wrap=True
    )
