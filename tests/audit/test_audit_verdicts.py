"""Verdicts on a generated family of real safetensors checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.audit_checkpoints import audit

from companion.audit.schemas import AuditResult
from companion.manifest import sha256_file
from companion.toolbox import run_tool
from companion.tools import ToolContext


def role(r: AuditResult, name: str) -> Any:
    """One role summary."""
    return next(g for g in r.per_role if g.role == name)


@pytest.mark.parametrize(
    "variant", ["finetune", "bf16", "sharded", "permuted", "rescaled", "pruned"]
)
def test_derivatives_are_derived(fam: dict[str, Path], variant: str) -> None:
    r = audit(fam["base"], fam[variant])
    assert r.verdict == "derived", [x.statement for x in r.reasons]
    assert any(x.strength == "strong" for x in r.reasons)
    for x in r.reasons:
        if x.kind in ("direct", "permutation", "scale_invariant"):
            assert x.figure is not None and x.baseline_name  # every figure has its baseline


def test_finetune_scores_and_baselines(fam: dict[str, Path]) -> None:
    r = audit(fam["base"], fam["finetune"])
    mlp = role(r, "mlp")
    assert 0.8 < mlp.pearson_median < 0.999
    assert abs(mlp.shuffle_pearson_mean) < 0.05 and mlp.cross_layer_pearson_mean < 0.1
    row = next(t for t in r.per_tensor if t.name_a.endswith("layers.2.mlp.up_proj.weight"))
    assert row.z is not None and row.z > 20 and row.p is not None and row.p < 0.01
    assert row.metrics.identical_frac == 0.0 and 0.1 < row.metrics.rel_l2 < 0.6
    assert row.metrics.sign_agree > 0.8 and row.metrics.spearman > 0.8


def test_bf16_cast_is_near_identical(fam: dict[str, Path]) -> None:
    r = audit(fam["base"], fam["bf16"])
    rows = [t for t in r.per_tensor if t.role == "q"]
    assert all(t.dtype_a == "F32" and t.dtype_b == "BF16" for t in rows)
    assert all(t.metrics.pearson > 0.9999 and t.metrics.rel_l2 < 0.01 for t in rows)


def test_cosine_trap_on_independent_models(fam: dict[str, Path]) -> None:
    r = audit(fam["base"], fam["independent"])
    assert r.verdict == "independent"
    norm = role(r, "norm")
    assert norm.cosine_median > 0.95 and abs(norm.pearson_median) < 0.1
    assert norm.cosine_traps == norm.tensors
    assert norm.random_init_cosine > 0.95 and norm.shuffle_cosine_mean > 0.95
    trap = [x for x in r.reasons if x.kind == "cosine_trap"]
    assert trap and "Cosine trap" in trap[0].statement and trap[0].baseline > 0.95
    assert "cosine trap" in r.to_markdown().lower()
    assert not any(g.related for g in r.per_role)


def test_permuted_needs_matching_when_only_mlp(fam: dict[str, Path]) -> None:
    r = audit(fam["base"], fam["permuted"], roles="mlp")
    mlp = role(r, "mlp")
    assert abs(mlp.pearson_median) < 0.1  # direct comparison is fooled
    assert r.verdict == "derived"
    assert mlp.permutation and all(t.moved > 0.9 and t.observed > 0.9 for t in mlp.permutation)
    assert all(t.p <= 0.06 and t.observed > t.null_mean + 0.3 for t in mlp.permutation)
    assert {t.group for t in r.per_tensor} == {"mlp"}
    ind = audit(fam["base"], fam["independent"], roles=["mlp"])
    assert ind.verdict == "independent"
    assert all(t.observed < t.null_mean + 0.05 for t in role(ind, "mlp").permutation)


def test_permuted_heads_are_matched(fam: dict[str, Path]) -> None:
    r = audit(fam["base"], fam["permuted"], roles="attn")
    heads = role(r, "attn").permutation
    assert heads and all(t.kind == "heads" and t.observed > 0.99 for t in heads)
    assert r.verdict == "derived"


def test_rescaled_is_caught_scale_invariantly(fam: dict[str, Path]) -> None:
    r = audit(fam["base"], fam["rescaled"])
    assert abs(role(r, "norm").pearson_median) < 0.2  # gains were rescaled
    attn = role(r, "attn")
    assert attn.folded_pearson_median > 0.999 > attn.pearson_median
    assert any(x.kind == "scale_invariant" and x.strength == "strong" for x in r.reasons)


def test_depth_pruned_layer_map(fam: dict[str, Path]) -> None:
    r = audit(fam["base"], fam["pruned"])
    assert [(p.a, p.b) for p in r.layer_map] == [(0, 0), (2, 1), (3, 2)]
    assert any(u.name.startswith("model.layers.1.") and u.side == "a" for u in r.unmatched)
    assert {(ly.layer, ly.layer_b) for ly in r.per_layer} == {(0, 0), (2, 1), (3, 2)}


def test_graft_is_inconclusive(fam: dict[str, Path]) -> None:
    r = audit(fam["base"], fam["graft"])
    assert r.verdict == "inconclusive"
    assert role(r, "embedding").related and not role(r, "mlp").related


def test_third_model_baseline_and_manifest(fam: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out" / "report.md"
    r = audit(fam["base"], fam["finetune"], baseline=str(fam["independent"]), report=str(out))
    mlp = role(r, "mlp")
    assert mlp.third_pearson_median is not None and abs(mlp.third_pearson_median) < 0.05
    assert any(x.kind == "third_model" for x in r.reasons)
    assert out.read_text().startswith("# Weight audit") and r.report_path == str(out)
    hashed = {i.path: i.sha256 for i in r.manifest.inputs}
    for name in ("base", "finetune", "independent"):
        st = fam[name] / "model.safetensors"
        assert hashed[str(st.resolve())] == sha256_file(st)
        assert str((fam[name] / "config.json").resolve()) in hashed
    assert r.manifest.parameters["baseline"] == str(fam["independent"])
    assert r.manifest.tool == "audit.compare"
    # the manifest re-runs through the registry to the same numbers
    rerun = {**r.manifest.parameters, "report": None}  # the report exists; never overwritten
    again = run_tool("audit.compare", rerun, ToolContext())
    assert isinstance(again, AuditResult)
    assert [t.metrics for t in again.per_tensor] == [t.metrics for t in r.per_tensor]
    json.loads(r.model_dump_json())  # strict JSON (no NaN)


def test_sharded_equals_single_file(fam: dict[str, Path]) -> None:
    r = audit(fam["finetune"], fam["sharded"] / "model.safetensors.index.json")
    assert all(t.metrics.identical_frac == 1.0 for t in r.per_tensor)
    assert len(r.per_tensor) == 39 and not r.unmatched
    assert sum(i.path.endswith(".safetensors") for i in r.manifest.inputs) == 4


def test_no_baselines_mode(fam: dict[str, Path]) -> None:
    r = audit(fam["base"], fam["finetune"], baselines=False, permutation_test=False)
    assert r.verdict == "derived"
    assert all(t.baselines.shuffle_pearson_mean is None for t in r.per_tensor)
