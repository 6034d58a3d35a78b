"""Demo section: fingerprint a small zoo, then ask for the parent of a disguised derivative."""

from __future__ import annotations

from pathlib import Path

from companion.audit import synth
from companion.fingerprint import zoo
from companion.tools import Show, ToolContext

FOLDER = "fingerprints"


def build(workspace: Path) -> None:
    """A base, unrelated models, and a permuted + quantized derivative of the base."""
    root = workspace / FOLDER
    spec = synth.Spec()
    w = synth.base(spec, seed=0)
    synth.save(root / "base", w, spec)
    for seed in range(1, 6):
        synth.save(root / f"unrelated-{seed}", synth.base(spec, seed=100 + seed), spec)
    disguised = zoo.quantized(zoo.hidden_permuted(synth.permuted(w, spec), spec))
    synth.save(root / "disguised", disguised, spec)


def run(workspace: Path, ctx: ToolContext, show: Show) -> None:
    """Fingerprint the stored models, then identify the disguised one's parent."""
    root = workspace / FOLDER
    stored = [str(root / "base")] + [str(root / f"unrelated-{s}") for s in range(1, 6)]
    show("fingerprint.compute: the known models", ctx.run("fingerprint.compute", {"paths": stored}))
    args = {"path": str(root / "disguised")}
    show(
        "fingerprint.identify: a permuted, quantized copy (expect base)",
        ctx.run("fingerprint.identify", args),
    )
