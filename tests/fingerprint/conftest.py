"""A zoo on disk: a base, 50 unrelated models of the same config, and disguised derivatives."""

from __future__ import annotations

from pathlib import Path

import pytest

from companion.audit import synth
from companion.fingerprint import zoo
from companion.settings import Settings
from companion.toolbox import context
from companion.tools import ToolContext

UNRELATED = 50


def derivatives(w: synth.Weights, spec: synth.Spec) -> dict[str, tuple[synth.Weights, synth.Spec]]:
    """Every derivative the parent search must see through."""
    return {
        "permuted": (zoo.hidden_permuted(synth.permuted(w, spec), spec), spec),
        "rotated": (zoo.rotated(synth.rescaled(w, spec), spec), spec),
        "quantized": (zoo.quantized(w), spec),
        "vocab_extended": zoo.vocab_extended(w, spec),
        "pruned": zoo.ffn_pruned(w, spec),
        "finetuned": (synth.finetune(w, seed=1), spec),
        "all_at_once": (zoo.quantized(zoo.hidden_permuted(synth.permuted(w, spec), spec)), spec),
    }


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the zoo once per module."""
    root = tmp_path_factory.mktemp("zoo")
    spec = synth.Spec()
    w = synth.base(spec, seed=0)
    synth.save(root / "base", w, spec)
    for seed in range(UNRELATED):
        synth.save(root / f"unrelated-{seed}", synth.base(spec, seed=1000 + seed), spec)
    for name, (dw, dspec) in derivatives(w, spec).items():
        synth.save(root / name, dw, dspec)
    synth.save(root / "independent", synth.base(spec, seed=99), spec)
    return root


@pytest.fixture(scope="module")
def stored(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ToolContext:
    """A context whose store holds the base and the unrelated models' fingerprints."""
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    ctx = context(settings, [zoo_dir])
    paths = [str(zoo_dir / "base")] + [str(zoo_dir / f"unrelated-{s}") for s in range(UNRELATED)]
    ctx.run("fingerprint.compute", {"paths": paths})
    return ctx
