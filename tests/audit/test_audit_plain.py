"""The default audit's early stop (plain.py): the symmetry tests are skipped only when every
matrix already matches A's element-wise, and then they could not have changed anything.

The rule's error rate is measured both ways on real files: on every derivation and evasion
the family holds, the skipped run gives the same verdict and derivation kinds as the run with
the tests forced (`symmetry_tests=always`); it never fires on a pair where a symmetry hides
the match; and it never fires on independent pairs of the same config.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.audit_checkpoints import SPEC, audit

from companion.audit import synth, synth_shapes
from companion.audit.schemas import AuditResult

SKIP = "symmetry tests not run"


def skipped(r: AuditResult) -> bool:
    """Whether the early stop fired (its note is the aligned evidence's stop reason)."""
    return r.aligned is not None and (r.aligned.stopped_early or "").startswith(SKIP)


def kinds(r: AuditResult) -> set[str]:
    """Derivation kinds of a result."""
    return {d.kind for d in r.derivation}


@pytest.mark.parametrize(
    "name", ["finetune", "bf16", "lora", "sharded", "rescaled", "permuted", "hidden_permuted"]
)
def test_the_stop_never_changes_the_verdict_or_the_derivation(
    fam: dict[str, Path], name: str
) -> None:
    auto = audit(fam["base"], fam[name])
    forced = audit(fam["base"], fam[name], symmetry_tests="always")
    assert not skipped(forced) and forced.aligned is not None and forced.aligned.layers
    assert auto.verdict == forced.verdict == "derived"
    assert kinds(auto) == kinds(forced)
    if skipped(auto):  # the deltas that name the derivation are the same ones
        assert auto.aligned is not None and auto.aligned.deltas == forced.aligned.deltas
        assert not auto.aligned.layers and not any(g.permutation for g in auto.per_role)


@pytest.mark.parametrize("name", ["permuted", "independent"])
def test_features_streamed_after_the_stop_is_ruled_out_match_the_forced_run(
    fam: dict[str, Path], name: str
) -> None:
    """The default run takes the matching test's row projections only once the stop is ruled
    out (the match layers streamed again); the tests then see what the forced run saw."""
    auto = audit(fam["base"], fam[name])
    forced = audit(fam["base"], fam[name], symmetry_tests="always")
    assert not skipped(auto)
    tests = [g.permutation for g in auto.per_role]
    assert any(tests) and tests == [g.permutation for g in forced.per_role]
    assert auto.verdict == forced.verdict


def test_it_fires_on_plain_derivatives(fam: dict[str, Path]) -> None:
    for name in ("finetune", "bf16", "lora", "sharded"):
        r = audit(fam["base"], fam[name])
        assert skipped(r), (name, r.aligned.stopped_early if r.aligned else None)
        assert "matrices already match A's element-wise" in (r.aligned.stopped_early or "")
        said = [x for x in r.reasons if x.statement.startswith("Symmetry tests not run")]
        assert said and said[0].strength == "info"  # told, never a deciding reason


@pytest.mark.parametrize("name", ["permuted", "hidden_permuted", "hidden_permuted_all"])
def test_it_never_fires_when_a_symmetry_hides_the_match(fam: dict[str, Path], name: str) -> None:
    r = audit(fam["base"], fam[name])
    assert not skipped(r)
    assert r.verdict == "derived" and "permuted" in kinds(r)


def test_it_never_fires_on_changed_shapes_or_reordered_layers(tmp_path: Path) -> None:
    w = synth.base(SPEC, seed=0)
    a = synth.save(tmp_path / "a", w, SPEC)
    pruned, pspec = synth.depth_pruned(synth.finetune(w, seed=1), SPEC, drop=(2,))
    moved, mspec = synth_shapes.layers_reordered(synth.finetune(w, seed=1), SPEC, [1, 0, 3, 2])
    for folder, weights, spec in (("pruned", pruned, pspec), ("moved", moved, mspec)):
        r = audit(a, synth.save(tmp_path / folder, weights, spec))
        assert r.verdict == "derived"
        if folder == "pruned":  # A's dropped layer has no counterpart: the tests run
            assert not skipped(r)


def test_it_never_fires_on_independent_pairs(tmp_path: Path) -> None:
    a = synth.save(tmp_path / "a", synth.base(SPEC, seed=0), SPEC)
    for seed in range(100, 112):
        r = audit(a, synth.save(tmp_path / f"i{seed}", synth.base(SPEC, seed=seed), SPEC))
        assert not skipped(r), seed
        assert r.verdict == "independent", (seed, [x.statement for x in r.reasons[:3]])
