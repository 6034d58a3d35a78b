"""Demo section: the Solar case rebuilt from public figures, investigated as one question."""

from __future__ import annotations

from pathlib import Path

from companion.case import solar
from companion.tools import Show, ToolContext

FOLDER = "solar"
HTML_NAME = "solar-dossier.html"


def build(workspace: Path) -> None:
    """Write the reconstructed Solar, GLM-4.5-Air and INTELLECT-3 folders."""
    solar.build(workspace / FOLDER)


def run(workspace: Path, ctx: ToolContext, show: Show) -> None:
    """Was Solar derived from GLM (claimed: from scratch)? And the sibling pair, for contrast."""
    root = workspace / FOLDER
    reports = workspace / "reports"
    args = {
        "a": str(root / "glm-4.5-air"),
        "b": str(root / "solar-open-100b"),
        "claimed": "trained from scratch",
        "html": str(reports / HTML_NAME),
    }
    show("case: was Solar-Open-100B derived from GLM-4.5-Air?", ctx.run("case.investigate", args))
    sibling = {
        "a": str(root / "glm-4.5-air"),
        "b": str(root / "intellect-3"),
        "claimed": "fine-tuned from GLM-4.5-Air",
        "html": str(reports / "sibling-dossier.html"),
    }
    show("case: was INTELLECT-3 derived from GLM-4.5-Air?", ctx.run("case.investigate", sibling))
