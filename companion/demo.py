"""`companion demo`: build an example workspace with the project's own generators, run every tool.

Each engine adds a section module to DEMO_SECTIONS. A section exposes
`build(workspace: Path) -> None` (writes its example files) and
`run(workspace: Path, ctx: ToolContext, show: Show) -> None` (runs its tools, calls `show`).
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from companion.settings import Settings
from companion.tools import ToolContext

Show = Callable[[str, BaseModel], None]

DEMO_SECTIONS: tuple[str, ...] = (
    "companion.workspace_demo",
    "companion.architecture.demo",
    "companion.evidence.demo",
    "companion.audit.demo",
    "companion.store.demo",
    "companion.llm.demo",
)


def run_demo(folder: Path | None) -> int:
    """Build the example workspace in `folder` (or a temp dir) and print every tool's result."""
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.rule import Rule

    from companion.store import recorder_for
    from companion.tools import render_markdown

    console = Console()
    workspace = (folder or Path(tempfile.mkdtemp(prefix="companion-demo-"))).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]companion demo[/bold]: example workspace in {workspace}")
    sections = [importlib.import_module(name) for name in DEMO_SECTIONS]
    for section in sections:
        section.build(workspace)
    settings = Settings(home=workspace / ".companion")
    ctx = ToolContext(settings=settings, roots=[workspace], recorder=recorder_for(settings))

    def show(title: str, result: BaseModel) -> None:
        console.print(Rule(title))
        console.print(Markdown(render_markdown(result)))

    for section in sections:
        section.run(workspace, ctx, show)
    console.print(Rule())
    console.print(f"Done. Open {workspace} in your editor with `companion serve` to explore it.")
    return 0
