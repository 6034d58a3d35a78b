"""Per-head invertible maps inside attention (W_Q <- A·W_Q, W_K <- A^-T·W_K; W_V <- B·W_V,
W_O <- W_O·B^-1): written by synth.rotated, found by the rotation-invariant head test and
named `rotated`; fine-tunes, permutations and independent pairs never are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.audit_checkpoints import audit, kind

from companion.audit import synth, synth_shapes
from companion.audit.derivation import R_INVARIANT, R_ROTATED
from companion.audit.schemas import AuditResult, MatchSummary

SPEC = synth.Spec()
ROLES = ("q", "k", "v", "o")


def _attn(w: dict[str, Any], layer: int) -> list[np.ndarray[Any, Any]]:
    """q, k, v, o of one layer in float64."""
    p = f"model.layers.{layer}.self_attn."
    return [w[p + f"{r}_proj.weight"].astype(np.float64) for r in ROLES]


def _products(w: dict[str, Any], layer: int, kv: int) -> list[np.ndarray[Any, Any]]:
    """Per Q head, Q_hᵀK_g and O_h·V_g (g: the head's K/V group)."""
    q, k, v, o = _attn(w, layer)
    d, per = SPEC.head_dim, SPEC.heads // kv
    out = []
    for h in range(SPEC.heads):
        g = h // per
        qh, kg, vg = q[h * d : (h + 1) * d], k[g * d : (g + 1) * d], v[g * d : (g + 1) * d]
        out += [qh.T @ kg, o[:, h * d : (h + 1) * d] @ vg]
    return out


@pytest.mark.parametrize("kv", [SPEC.heads, 2])
@pytest.mark.parametrize("which", [("qk",), ("vo",), ("qk", "vo")])
def test_rotated_keeps_every_head_product(kv: int, which: tuple[str, ...]) -> None:
    w = synth.base(SPEC, seed=0)
    if kv < SPEC.heads:
        w, _ = synth_shapes.kv_pooled(w, SPEC, kv)
    r = synth.rotated(w, SPEC, seed=4, which=which)
    for layer in range(SPEC.layers):
        for pa, pb in zip(_products(w, layer, kv), _products(r, layer, kv), strict=True):
            np.testing.assert_allclose(pb, pa, rtol=1e-4, atol=1e-5 * float(np.abs(pa).max()))
        for role, xa, xb in zip(ROLES, _attn(w, layer), _attn(r, layer), strict=True):
            moved = role in "".join(which)
            assert moved != np.array_equal(xa, xb), role
            if moved:  # the map scrambles the matrix element-wise
                assert abs(np.corrcoef(xa.ravel(), xb.ravel())[0, 1]) < 0.3, role
    assert {n for n in w if not np.array_equal(w[n], r[n])} <= {
        f"model.layers.{i}.self_attn.{p}_proj.weight" for i in range(SPEC.layers) for p in ROLES
    }


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A base, rotated derivatives and independent twins (rotated too), written out."""
    root = tmp_path_factory.mktemp("rotated")
    w = synth.base(SPEC, seed=0)
    small = synth.finetune(w, seed=1, update=0.1, noise=0.1)
    out = {
        "base": synth.save(root / "base", w, SPEC),
        "qk": synth.save(root / "qk", synth.rotated(w, SPEC, which=("qk",)), SPEC),
        "vo": synth.save(root / "vo", synth.rotated(w, SPEC, which=("vo",)), SPEC),
        "qk,vo": synth.save(root / "both", synth.rotated(w, SPEC), SPEC),
        "ft": synth.save(root / "ft", synth.rotated(synth.finetune(w, seed=1), SPEC), SPEC),
        "all": synth.save(
            root / "all",
            synth.hidden_permuted(synth.permuted(synth.rotated(small, SPEC), SPEC), seed=9),
            SPEC,
        ),
        "plain_ft": synth.save(root / "plain_ft", synth.finetune(w, seed=1), SPEC),
        "heavy_ft": synth.save(
            root / "heavy_ft", synth.finetune(w, seed=1, update=1.5, noise=1.5), SPEC
        ),
        "permuted": synth.save(
            root / "permuted", synth.hidden_permuted(synth.permuted(small, SPEC)), SPEC
        ),
    }
    for seed in (100, 101, 102):
        twin = synth.rotated(synth.base(SPEC, seed=seed), SPEC, seed=seed)
        out[f"ind{seed}"] = synth.save(root / f"ind{seed}", twin, SPEC)
    gqa, cfg = synth_shapes.kv_pooled(w, SPEC, 2)
    out["gqa_base"] = synth_shapes.save_with(root / "gqa_base", gqa, SPEC, cfg)
    out["gqa"] = synth_shapes.save_with(root / "gqa", synth.rotated(gqa, SPEC), SPEC, cfg)
    other, _ = synth_shapes.kv_pooled(synth.base(SPEC, seed=100), SPEC, 2)
    twin = synth.rotated(other, SPEC, seed=100)
    out["gqa_ind"] = synth_shapes.save_with(root / "gqa_ind", twin, SPEC, cfg)
    return out


def _invariant(r: AuditResult) -> list[MatchSummary]:
    """The heads_invariant layer tests (asserting the symmetry tests ran)."""
    assert r.aligned is not None
    assert "symmetry tests not run" not in (r.aligned.stopped_early or "")
    tests = [t for t in r.aligned.layers if t.kind == "heads_invariant"]
    assert tests and all(t.elementwise is not None for t in tests)
    return tests


@pytest.mark.parametrize("maps", ["qk", "vo", "qk,vo"])
def test_rotated_b_is_derived_and_named(zoo: dict[str, Path], maps: str) -> None:
    r = audit(zoo["base"], zoo[maps])
    assert r.verdict == "derived", [x.statement for x in r.reasons]
    tests = _invariant(r)  # plain.py cannot skip them: the mapped matrices do not match
    d = kind(r, "rotated")
    assert d.evasive and d.figures["maps"] == maps
    assert float(d.figures["heads_invariant_r"]) > 0.95
    assert float(d.figures["heads_invariant_null_r"]) < 0.2
    assert float(d.figures["heads_invariant_z"]) > 10 and d.figures["layers"] == len(tests)
    for p in maps.split(","):
        assert float(d.figures[f"aligned_pearson_{p}"]) < 0.2
    assert float(d.figures["attn_pearson_median"]) < (0.2 if maps == "qk,vo" else 0.6)
    assert all(t.moved == 0 for t in tests)
    assert {x.kind for x in r.derivation} == {"rotated"}  # no permutation, no fine-tune


def test_rotated_and_fine_tuned(zoo: dict[str, Path]) -> None:
    r = audit(zoo["base"], zoo["ft"])
    assert r.verdict == "derived"
    _invariant(r)
    assert kind(r, "rotated").figures["maps"] == "qk,vo"
    assert float(kind(r, "fine_tune").figures["delta_rel_l2"]) < 0.5  # from the MLP alone


def test_rotated_hidden_and_heads_permuted(zoo: dict[str, Path]) -> None:
    r = audit(zoo["base"], zoo["all"])
    assert r.verdict == "derived"
    assert all(t.moved > 0.5 for t in _invariant(r))
    assert kind(r, "rotated").figures["maps"] == "qk,vo"
    perm = kind(r, "permuted")
    assert perm.figures["hidden_dims_moved"] == SPEC.hidden
    assert float(perm.figures["heads_invariant_moved_share"]) > 0.5
    assert "heads_moved_share" not in perm.figures  # the element-wise head match is moot


def test_rotated_gqa(zoo: dict[str, Path]) -> None:
    r = audit(zoo["gqa_base"], zoo["gqa"])
    assert r.verdict == "derived"
    _invariant(r)
    assert kind(r, "rotated").figures["maps"] == "qk,vo"
    ind = audit(zoo["gqa_base"], zoo["gqa_ind"])
    assert ind.verdict == "independent" and {x.kind for x in ind.derivation} == {"independent"}


@pytest.mark.parametrize("twin", ["ind100", "ind101", "ind102"])
def test_independent_rotated_twin_is_not_derived(zoo: dict[str, Path], twin: str) -> None:
    r = audit(zoo["base"], zoo[twin])
    assert r.verdict == "independent", [x.statement for x in r.reasons]
    assert r.aligned is not None and not r.aligned.related
    for t in _invariant(r):  # the invariant matches no better than its null
        assert t.observed < R_INVARIANT and t.z < 5
    assert {x.kind for x in r.derivation} == {"independent"}


@pytest.mark.parametrize("pair", ["plain_ft", "heavy_ft", "permuted"])
def test_unrotated_derivatives_are_not_rotated(zoo: dict[str, Path], pair: str) -> None:
    r = audit(zoo["base"], zoo[pair], symmetry_tests="always")
    assert r.verdict == "derived"
    tests = _invariant(r)
    assert "rotated" not in {x.kind for x in r.derivation}
    ews = [min(t.elementwise.values()) for t in tests if t.elementwise]
    if pair == "heavy_ft":  # element-wise below R_ROTATED, but the invariant falls with it
        assert max(ews) < R_ROTATED and max(t.observed for t in tests) < R_INVARIANT
    else:  # the alignment undoes the permutations: q, k, v, o match element-wise
        assert min(ews) > 0.8


def test_rotated_within_a_small_head_budget(
    zoo: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("companion.audit.sketch.KEEP", SPEC.head_dim * SPEC.hidden * 2)
    r = audit(zoo["base"], zoo["all"])
    assert all(t.units == 2 for t in _invariant(r))  # B's first two heads, read by rows
    assert kind(r, "rotated").figures["maps"] == "qk,vo"
    ind = audit(zoo["base"], zoo["ind100"])
    assert ind.verdict == "independent" and "rotated" not in {x.kind for x in ind.derivation}
