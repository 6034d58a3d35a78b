"""`companion demo`: build an example workspace with the project's own generators, run every tool.

Each engine has a demo section (`<engine>/demo.py`) with `build(workspace)`, which writes its
example files, and `run(workspace, ctx, show)`, which runs its tools and shows the results.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from companion.architecture import demo as architecture_demo
from companion.audit import demo as audit_demo
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
    store_demo,
    llm_demo,
)


def run_demo(folder: Path | None) -> int:
    """Build the example workspace in `folder` (or a temp dir) and print every tool's result."""
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.rule import Rule

    from companion.toolbox import context

    console = Console()
    workspace = (folder or Path(tempfile.mkdtemp(prefix="companion-demo-"))).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]companion demo[/bold]: example workspace in {workspace}")
    for section in DEMO_SECTIONS:
        section.build(workspace)
    ctx = context(Settings(home=workspace / ".companion"), [workspace])

    def show(title: str, result: ToolResult) -> None:
        console.print(Rule(title))
        console.print(Markdown(result.to_markdown()))

    for section in DEMO_SECTIONS:
        section.run(workspace, ctx, show)
    console.print(Rule())
    console.print(f"Done. Open {workspace} in your editor with `companion serve` to explore it.")
    return 0
