"""Layers reordered: the free layer map is found, named and reported; independent pairs never.

End-to-end pairs are real folders written by companion.audit.synth / synth_shapes and
audited through the registered tool; the calibration test runs the same statistic on
samples of independent random models of several depths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.audit_checkpoints import audit, kind
from scipy.stats import kstest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from companion.audit import layerorder, synth, synth_shapes
from companion.audit.schemas import AuditResult

SPEC = synth.Spec()


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A and its reordered, pruned, up-scaled and independent counterparts."""
    root = tmp_path_factory.mktemp("layers")
    w = synth.base(SPEC, 0)
    ft = synth.finetune(w, seed=1)
    out = {"base": synth.save(root / "base", w, SPEC)}
    for name, weights, order in (
        ("permuted", w, [2, 0, 3, 1]),
        ("ft permuted", ft, [1, 3, 0, 2]),
        ("ft two swapped", ft, [0, 2, 1, 3]),
        ("pruned reordered", ft, [3, 0, 2]),
    ):
        x, s = synth_shapes.layers_reordered(weights, SPEC, order)
        out[name] = synth.save(root / name.replace(" ", "_"), x, s)
    small = synth.finetune(w, seed=1, update=0.1, noise=0.1)
    x, s = synth_shapes.layers_reordered(synth.hidden_permuted(small), SPEC, [2, 0, 3, 1])
    out["hidden perm + reordered"] = synth.save(root / "hidden_reordered", x, s)
    out["hidden perm"] = synth.save(root / "hidden", synth.hidden_permuted(small), SPEC)
    x, s = synth_shapes.layers_reordered(synth.permuted(small, SPEC), SPEC, [3, 1, 0, 2])
    out["units perm + reordered"] = synth.save(root / "units_reordered", x, s)
    x, s = synth_shapes.layers_reordered(
        synth.hidden_permuted(synth.base(SPEC, 105)), SPEC, [3, 2, 1, 0]
    )
    out["ind105 hidden perm + reordered"] = synth.save(root / "ind105", x, s)
    x, s = synth_shapes.depth_upscaled(ft, SPEC, [0, 1, 2, 1, 2, 3])
    out["solar"] = synth.save(root / "solar", x, s)
    out["ft"] = synth.save(root / "ft", ft, SPEC)
    for seed in (100, 101, 102):
        out[f"ind{seed}"] = synth.save(root / f"ind{seed}", synth.base(SPEC, seed), SPEC)
    x, s = synth_shapes.layers_reordered(synth.base(SPEC, 103), SPEC, [1, 0, 3, 2])
    out["ind103 permuted"] = synth.save(root / "ind103p", x, s)
    x, s = synth_shapes.layers_reordered(synth.base(SPEC, 104), SPEC, [2, 0, 1])
    out["ind104 pruned"] = synth.save(root / "ind104p", x, s)
    return out


def kinds(r: AuditResult) -> set[str]:
    """Every derivation kind named."""
    return {d.kind for d in r.derivation}


def test_permuted_layers_are_derived_named_and_mapped(zoo: dict[str, Path]) -> None:
    r = audit(zoo["base"], zoo["permuted"])
    assert r.verdict == "derived"
    d = kind(r, "layers_reordered")
    f = d.figures
    assert d.evasive and d.confidence == "high"
    assert f["layers_moved"] == 4 and f["layers_b"] == 4 and f["map"] == "2->0,0->1,3->2,1->3"
    assert float(f["matched_pearson"]) > 0.99 and abs(float(f["in_order_pearson"])) < 0.1
    assert float(f["null_gain_mean"]) < 0.1 and float(f["z"]) >= 20
    assert abs(float(f["null_matched_pearson"])) < 0.1  # the same map on unrelated weights
    assert {(p.a, p.b) for p in r.layer_map} == {(2, 0), (0, 1), (3, 2), (1, 3)}
    assert all((p.score or 0) > 0.99 for p in r.layer_map)
    layers = [t for t in r.per_tensor if t.layer is not None]
    assert layers and all((t.metrics.pearson or 0) > 0.99 for t in layers)  # pairs followed
    reason = next(x for x in r.reasons if x.kind == "layer_order")
    assert reason.strength == "strong" and "4 of 4 moved" in reason.statement
    assert "fine_tune" not in kinds(r)  # the same weights: no delta to name


def test_fine_tune_with_permuted_layers_names_both(zoo: dict[str, Path]) -> None:
    r = audit(zoo["base"], zoo["ft permuted"])
    assert r.verdict == "derived"
    f = kind(r, "layers_reordered").figures
    assert f["map"] == "1->0,3->1,0->2,2->3" and f["layers_moved"] == 4
    # the delta figures are those of the same fine-tune in order
    in_order = kind(audit(zoo["base"], zoo["ft"]), "fine_tune").figures
    assert kind(r, "fine_tune").figures == in_order


def test_two_swapped_layers(zoo: dict[str, Path]) -> None:
    r = audit(zoo["base"], zoo["ft two swapped"])
    assert r.verdict == "derived"
    f = kind(r, "layers_reordered").figures
    assert f["layers_moved"] == 2 and f["map"] == "0->0,2->1,1->2,3->3"


def test_pruned_and_reordered(zoo: dict[str, Path]) -> None:
    r = audit(zoo["base"], zoo["pruned reordered"])
    assert r.verdict == "derived"
    assert kind(r, "depth_pruned").figures == {"layers_a": 4, "layers_b": 3}
    f = kind(r, "layers_reordered").figures
    assert f["map"] == "3->0,0->1,2->2" and f["layers_a"] == 4 and f["layers_b"] == 3
    assert {(p.a, p.b) for p in r.layer_map} == {(3, 0), (0, 1), (2, 2)}
    assert all((p.score or 0) > 0.9 for p in r.layer_map)
    assert "fine_tune" in kinds(r)


def test_solar_upscaling_keeps_its_order(zoo: dict[str, Path]) -> None:
    r = audit(zoo["base"], zoo["solar"])
    assert r.verdict == "derived"
    assert kind(r, "depth_upscaled").figures == {"layers_a": 4, "layers_b": 6}
    assert "layers_reordered" not in kinds(r)
    assert not [x for x in r.reasons if x.kind == "layer_order"]


def test_fine_tune_in_order_is_not_reordered(zoo: dict[str, Path]) -> None:
    r = audit(zoo["base"], zoo["ft"])
    assert r.verdict == "derived" and "layers_reordered" not in kinds(r)
    assert [(p.a, p.b) for p in r.layer_map] == [(k, k) for k in range(4)]


def test_reordered_under_a_hidden_permutation(zoo: dict[str, Path]) -> None:
    """Element-wise scores are noise there: the norm gains in A's hidden order (recovered
    from the embedding, which no layer touches) give the map."""
    r = audit(zoo["base"], zoo["hidden perm + reordered"])
    assert r.verdict == "derived"
    f = kind(r, "layers_reordered").figures
    assert f["map"] == "2->0,0->1,3->2,1->3" and "hidden order" in str(f["scored_by"])
    assert {"permuted", "fine_tune"} <= kinds(r)
    assert r.aligned is not None and r.aligned.related


def test_reordered_with_units_and_heads_permuted(zoo: dict[str, Path]) -> None:
    """Units and heads permuted inside each layer: the norm gains still carry the map."""
    r = audit(zoo["base"], zoo["units perm + reordered"])
    assert r.verdict == "derived"
    f = kind(r, "layers_reordered").figures
    assert f["map"] == "3->0,1->1,0->2,2->3" and f["layers_moved"] == 3
    assert f["scored_by"] == "samples" and "permuted" in kinds(r)


def test_hidden_permutation_in_order_is_not_reordered(zoo: dict[str, Path]) -> None:
    r = audit(zoo["base"], zoo["hidden perm"])
    assert r.verdict == "derived" and "permuted" in kinds(r)
    assert "layers_reordered" not in kinds(r)
    assert [(p.a, p.b) for p in r.layer_map] == [(k, k) for k in range(4)]


@pytest.mark.parametrize(
    "name",
    [
        "ind100",
        "ind101",
        "ind102",
        "ind103 permuted",
        "ind104 pruned",
        "ind105 hidden perm + reordered",
    ],
)
def test_independent_pairs_are_neither_reordered_nor_derived(
    zoo: dict[str, Path], name: str
) -> None:
    r = audit(zoo["base"], zoo[name])
    assert r.verdict != "derived", [x.statement for x in r.reasons[:3]]
    assert "layers_reordered" not in kinds(r)
    assert not [x for x in r.reasons if x.kind == "layer_order"]


SHAPES = [(4, 4, 9), (6, 6, 5), (8, 8, 3), (6, 4, 5), (4, 6, 5), (12, 12, 2)]  # layers, sites
PAIRS = 240


def _model(rng: np.random.Generator, layers: int, scales: list[Any]) -> list[list[Any]]:
    """Per site, one sample per layer: a shared per-model component across depth, and a
    scale pattern over positions that every model of the architecture has (heteroscedastic,
    aligned across models: what element-wise shuffling would miss)."""
    out = []
    for s in scales:
        common = rng.standard_normal(s.size)
        out.append([s * (0.5 * common + rng.standard_normal(s.size)) for _ in range(layers)])
    return out


def _pair(seed: int, early: bool) -> layerorder.LayerOrder:
    """The layer-order test on two independent models of one of SHAPES."""
    rng = np.random.default_rng([seed, 3])
    la, lb, n_sites = SHAPES[seed % len(SHAPES)]
    scales = [np.exp(rng.normal(0, 0.7, rng.integers(300, 5000))) for _ in range(n_sites)]
    ma, mb = _model(rng, la, scales), _model(rng, lb, scales)
    sites = []
    for xa, xb in zip(ma, mb, strict=True):
        sa, sb = layerorder.stack(list(xa)), layerorder.stack(list(xb))
        assert sa is not None and sb is not None
        sites.append(layerorder.Site(sa[0], sb[0], sa[1], sb[1]))
    return layerorder.order_test(sites, list(range(la)), list(range(lb)), seed, lambda: None, early)


def test_layer_order_null_is_calibrated_on_independent_models() -> None:
    with threadpool_limits(limits=1):
        full = [_pair(seed, early=False) for seed in range(PAIRS)]
        stopped = [_pair(seed, early=True) for seed in range(PAIRS)]
    p = np.array([o.test.p for o in full])
    # empirical p with 19 draws is discrete: jitter inside its cell before the KS test
    u = np.clip(p - np.random.default_rng(0).uniform(0, 1 / 20, p.size), 0, 1)
    assert kstest(u, "uniform").pvalue > 0.01
    assert not any(o.reordered for o in full + stopped)  # the map never departs
    assert np.mean([o.test.null.size < 19 for o in stopped]) > 0.3  # early stop does stop
    tested = [layerorder.out_of_order(o.free, o.free.size > len(o.layers_a)) for o in full]
    assert np.mean(tested) > 0.5  # most independent pairs do reach the test
