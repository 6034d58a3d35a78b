"""Demo section: a generated family of checkpoints (base, fine-tune, independent) and audits."""

from __future__ import annotations

from pathlib import Path

from companion.audit import synth
from companion.tools import Show, ToolContext

FOLDER = "checkpoints"


def build(workspace: Path) -> None:
    """Write base, fine-tune and independent checkpoints with the synthetic generator."""
    synth.family(workspace / FOLDER)


def run(workspace: Path, ctx: ToolContext, show: Show) -> None:
    """Audit the fine-tune and the independent model against the base."""
    root = workspace / FOLDER
    for other, title in (
        ("finetune", "audit.compare: base vs fine-tune (expect derived)"),
        ("independent", "audit.compare: base vs independent (expect independent, cosine trap)"),
    ):
        args = {"a": str(root / "base"), "b": str(root / other)}
        show(title, ctx.run("audit.compare", args))
