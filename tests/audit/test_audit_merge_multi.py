"""Merges with several candidates: B ≈ α·A + Σ βᵢ·Cᵢ, on real safetensors files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from companion.audit import synth
from companion.audit.merge import fit_multi, spanned
from companion.audit.schemas import AuditResult, CandidateFit
from companion.audit.synth_adapter import write_adapter
from companion.errors import InputError
from companion.toolbox import run_tool
from companion.tools import ToolContext, get_tool, parse_input

Weights = dict[str, Any]
SMALL = synth.Spec(hidden=48, heads=4, intermediate=96)  # another shape: not comparable


def _mix(parts: list[tuple[float, Weights]]) -> Weights:
    """Σ wᵢ·Xᵢ per tensor (float32)."""
    names = parts[0][1]
    return {k: sum(w * x[k] for w, x in parts).astype(np.float32) for k in names}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A, three independent candidates, merges of them, a fine-tune, a copy of A, another shape."""
    root = tmp_path_factory.mktemp("merges")
    spec = synth.Spec()
    a, c1, c2, c3 = (synth.base(spec, s) for s in (0, 100, 200, 300))
    m3 = _mix([(0.5, a), (0.3, c1), (0.2, c2)])
    models = {
        "a": a,
        "c1": c1,
        "c2": c2,
        "c3": c3,
        "m3": m3,
        "m3_ft": synth.finetune(m3, seed=4, update=0.1, noise=0.1),
        "m2": _mix([(0.6, a), (0.4, c1)]),
        "ft": synth.finetune(a, seed=1),
        "copy_a": dict(a),
        "c1_bf16": synth.cast(c1),
        "negated": _mix([(1.3, a), (-0.3, c1)]),  # C1's task vector taken away from A
    }
    part = {k: (a[k] if k.startswith("model.layers.0.") else c3[k]) for k in a}  # A's layer 0
    models["m_part"] = _mix([(0.6, a), (0.4, part)])
    models["part"] = part
    out = {n: synth.save(root / n, w, spec) for n, w in models.items()}
    pruned, pspec = synth.depth_pruned(c1, spec, drop=(1,))
    out["c1_pruned"] = synth.save(root / "c1_pruned", pruned, pspec)  # 3 of C1's 4 layers
    out["small"] = synth.save(root / "small", synth.base(SMALL, 5), SMALL)
    out["adapter"] = write_adapter(root / "adapter", a, seed=7)
    return out


def audit(a: Path, b: Path, cs: list[Path], **extra: Any) -> AuditResult:
    """Audit B against A with the baselines cs (through the registry, as every door does)."""
    args = {"a": str(a), "b": str(b), "baseline": [str(c) for c in cs], **extra}
    r = run_tool("audit.compare", args, ToolContext())
    assert isinstance(r, AuditResult)
    return r


def _merge(r: AuditResult) -> dict[str, Any] | None:
    """The merge derivation's figures, if named."""
    return next((dict(d.figures) for d in r.derivation if d.kind == "merge"), None)


def _status(r: AuditResult) -> list[str]:
    """Each candidate's status, in the order given."""
    assert r.merge_fit is not None
    return [c.status for c in r.merge_fit.candidates]


def test_three_model_merge_names_both_candidates(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["m3"], [zoo["c1"], zoo["c2"]])
    fig = _merge(r)
    assert r.verdict == "derived" and fig is not None
    assert fig["alpha"] == pytest.approx(0.5, abs=1e-3)
    assert fig["beta.C1"] == pytest.approx(0.3, abs=1e-3)
    assert fig["beta.C2"] == pytest.approx(0.2, abs=1e-3)
    assert fig["C1"] == str(zoo["c1"]) and fig["C2"] == str(zoo["c2"])
    assert "beta" not in fig and "not_contributing" not in fig  # both named, by index
    assert _status(r) == ["contributes", "contributes"]
    assert r.baselines == [str(zoo["c1"]), str(zoo["c2"])] and r.baseline == str(zoo["c1"])
    text = r.to_markdown()
    assert "## Merge fit" in text and "0.3·C1 + 0.2·C2" in text


def test_merge_then_fine_tuned_keeps_both_betas(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["m3_ft"], [zoo["c1"], zoo["c2"], zoo["c3"]])
    fig = _merge(r)
    assert fig is not None and fig["residual_median"] > 0.01
    assert fig["beta.C1"] == pytest.approx(0.3, abs=0.02)
    assert fig["beta.C2"] == pytest.approx(0.2, abs=0.02)
    assert fig["alpha"] == pytest.approx(0.5, abs=0.02)
    assert _status(r) == ["contributes", "contributes", "not_contributing"]
    assert fig["not_contributing"] == f"C3 {zoo['c3']}" and "beta.C3" not in fig
    assert next(d for d in r.derivation if d.kind == "merge").confidence == "medium"


def test_unrelated_second_candidate_is_listed_as_not_contributing(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["m2"], [zoo["c1"], zoo["c2"]])
    fig = _merge(r)
    assert fig is not None
    assert fig["beta.C1"] == pytest.approx(0.4, abs=1e-3) and "beta.C2" not in fig
    assert "C2" not in fig and fig["not_contributing"] == f"C2 {zoo['c2']}"
    assert r.merge_fit is not None
    c2 = r.merge_fit.candidates[1]
    assert c2.status == "not_contributing" and c2.beta is not None and abs(c2.beta) < 0.01
    assert c2.beta_t_median is not None and c2.beta_t_median < 3 and "none of it" in c2.reason
    statement = next(d.statement for d in r.derivation if d.kind == "merge")
    assert "0.6·A + 0.4·C1 per tensor" in statement and "Not contributing: C2" in statement
    row = next(line for line in r.to_markdown().splitlines() if line.startswith("| C2 |"))
    assert len(re.split(r"(?<!\\)\|", row)) == 11  # 9 cells: the |t| in the reason escaped


def test_fine_tune_with_unrelated_candidates_names_no_merge(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["ft"], [zoo["c1"], zoo["c2"]])
    assert r.verdict == "derived" and _merge(r) is None
    assert "fine_tune" in [d.kind for d in r.derivation]
    assert _status(r) == ["not_contributing", "not_contributing"]
    assert r.merge_fit is not None and not r.merge_fit.named
    assert r.merge_fit.alpha == pytest.approx(1.0, abs=0.01)


def test_copy_of_a_is_redundant_and_another_shape_is_not_comparable(
    zoo: dict[str, Path],
) -> None:
    cands = [zoo["c1"], zoo["copy_a"], zoo["c2"], zoo["small"]]
    r = audit(zoo["a"], zoo["m3"], cands)
    assert _status(r) == ["contributes", "redundant", "contributes", "not_comparable"]
    assert r.merge_fit is not None
    copy, small = r.merge_fit.candidates[1], r.merge_fit.candidates[3]
    assert copy.reason.startswith("a copy of A up to scale") and copy.tensors == 0
    assert "no matrix of A's shape" in small.reason and "[256, 48]" in small.reason
    fig = _merge(r)
    assert fig is not None  # the redundant copy does not split C1's or C2's share
    assert fig["beta.C1"] == pytest.approx(0.3, abs=1e-3)
    assert fig["beta.C3"] == pytest.approx(0.2, abs=1e-3)
    assert fig["redundant"] == f"C2 {zoo['copy_a']}"
    assert fig["not_comparable"] == f"C4 {zoo['small']}"
    assert any(u.side == "baseline" and u.reason.startswith("baseline 4: ") for u in r.unmatched)


def test_a_second_copy_of_a_candidate_is_redundant_with_it(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["m3_ft"], [zoo["c1"], zoo["c1_bf16"], zoo["c2"]])
    assert _status(r) == ["contributes", "redundant", "contributes"]
    assert r.merge_fit is not None
    assert r.merge_fit.candidates[1].reason.startswith("a copy of C1 up to scale")
    fig = _merge(r)
    assert fig is not None and fig["beta.C1"] == pytest.approx(0.3, abs=0.02)


def test_calibration_unrelated_candidates_name_no_merge_over_seeds(tmp_path: Path) -> None:
    """The null: the same fit with candidates unrelated to B (same config and init recipe)."""
    spec = synth.Spec()
    shares: list[float] = []
    medians: list[float] = []
    for seed in range(5):
        a = synth.base(spec, 1000 + seed)
        paths = {
            "a": synth.save(tmp_path / f"a{seed}", a, spec),
            "ft": synth.save(tmp_path / f"ft{seed}", synth.finetune(a, seed=2000 + seed), spec),
            "ind": synth.save(tmp_path / f"ind{seed}", synth.base(spec, 3000 + seed), spec),
        }
        cs = [
            synth.save(tmp_path / f"c{seed}_{k}", synth.base(spec, 4000 + 10 * seed + k), spec)
            for k in range(2)
        ]
        shallow, pspec = synth.depth_pruned(synth.base(spec, 5000 + seed), spec, drop=(2,))
        cs.append(synth.save(tmp_path / f"p{seed}", shallow, pspec))  # paired through B's map
        r = audit(paths["a"], paths["ft"], cs, permutation_test=False)
        assert r.verdict == "derived" and _merge(r) is None
        assert r.merge_fit is not None
        fitted: list[CandidateFit] = r.merge_fit.candidates
        assert [c.status for c in fitted] == ["not_contributing"] * 3
        shares += [c.share_t3 or 0.0 for c in fitted]
        medians += [c.beta_t_median or 0.0 for c in fitted]
        r = audit(paths["a"], paths["ind"], cs[:2], permutation_test=False)
        assert r.verdict == "independent" and _merge(r) is None
    # |t| of an unrelated candidate's β is about |N(0, 1)|: median 0.67, P(|t| >= 3) 0.3 %
    assert 0.4 < float(np.median(medians)) < 1.0
    assert float(np.mean(shares)) < 0.02


def test_a_shallower_candidate_is_paired_through_b(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["m3"], [zoo["c1_pruned"], zoo["c2"]])
    fig = _merge(r)
    assert fig is not None and r.merge_fit is not None
    pruned = r.merge_fit.candidates[0]
    assert pruned.status == "contributes" and pruned.tensors == 23  # 30 matrices less a layer
    assert fig["beta.C1"] == pytest.approx(0.3, abs=1e-3)
    assert fig["beta.C2"] == pytest.approx(0.2, abs=1e-3)


def test_b_itself_as_candidate_is_not_a_merge_with_a(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["m3"], [zoo["m3"], zoo["c1"]])
    assert _merge(r) is None and r.merge_fit is not None and not r.merge_fit.named
    assert r.merge_fit.candidates[0].beta == pytest.approx(1.0, abs=1e-3)
    assert "B is the candidate" in r.merge_fit.note
    assert "B is the candidate" in r.to_markdown()


def test_a_candidate_equal_to_a_in_some_matrices_is_fitted_in_the_others(
    zoo: dict[str, Path],
) -> None:
    r = audit(zoo["a"], zoo["m_part"], [zoo["part"], zoo["c1"]])
    fig = _merge(r)
    assert fig is not None and r.merge_fit is not None
    part = r.merge_fit.candidates[0]
    assert part.status == "contributes" and part.tensors == 23  # not layer 0's 7 (A's own)
    assert fig["beta.C1"] == pytest.approx(0.4, abs=1e-3) and r.merge_fit.tensors == 30


def test_a_subtracted_candidate_is_not_named_a_merge(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["negated"], [zoo["c1"], zoo["c2"]])
    assert _merge(r) is None and r.merge_fit is not None
    c1 = r.merge_fit.candidates[0]
    assert c1.beta == pytest.approx(-0.3, abs=1e-3) and "subtracted" in c1.reason


def test_too_many_baselines_and_adapters_are_clear_errors(zoo: dict[str, Path]) -> None:
    with pytest.raises(InputError) as err:
        audit(zoo["a"], zoo["m3"], [zoo["c1"], zoo["c2"], zoo["c3"], zoo["copy_a"], zoo["ft"]])
    assert "at most 4" in str(err.value) and "groups" in (err.value.hint or "")
    with pytest.raises(InputError) as err:
        audit(zoo["a"], zoo["m3"], [zoo["c1"], zoo["adapter"]])
    assert "Baseline 2" in str(err.value) and "is a LoRA adapter folder" in str(err.value)
    with pytest.raises(InputError) as err:
        run_tool(
            "audit.compare",
            {"a": str(zoo["a"]), "b": str(zoo["m3"]), "baseline": [f"{zoo['a']}+{zoo['adapter']}"]},
            ToolContext(),
        )
    assert "cannot be BASE+ADAPTER" in str(err.value)


def test_schema_is_a_list_and_one_string_still_parses() -> None:
    t = get_tool("audit.compare")
    prop = t.llm_schema()["function"]["parameters"]["properties"]["baseline"]
    assert prop["type"] == "array" and prop["items"] == {"type": "string"}
    one = parse_input(t, {"a": "x", "b": "y", "baseline": "c"})
    assert one.model_dump()["baseline"] == "c"  # manifests of one-baseline runs unchanged
    assert parse_input(t, {"a": "x", "b": "y", "baseline": None}).model_dump()["baseline"] is None
    two = parse_input(t, {"a": "x", "b": "y", "baseline": ["c", "d,e"]})
    assert two.model_dump()["baseline"] == ["c", "d,e"]


def test_manifest_with_several_baselines_reproduces(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["m2"], [zoo["c1"], zoo["c2"]], permutation_test=False)
    assert r.manifest.parameters["baseline"] == [str(zoo["c1"]), str(zoo["c2"])]
    hashed = {i.path for i in r.manifest.inputs}
    assert str((zoo["c2"] / "model.safetensors").resolve()) in hashed  # sampled, still hashed
    again = run_tool("audit.compare", {**r.manifest.parameters, "report": None}, ToolContext())
    assert isinstance(again, AuditResult) and again.merge_fit == r.merge_fit


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m companion ...`."""
    return subprocess.run(
        [sys.executable, "-m", "companion", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_repeats_baseline_and_prints_the_fit(zoo: dict[str, Path]) -> None:
    base = ["audit", str(zoo["a"]), str(zoo["m3"]), "--no-store"]
    flags = ["--baseline", str(zoo["c1"]), "--baseline", str(zoo["c2"])]
    proc = _cli(*base, *flags, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    fig = next(d["figures"] for d in data["derivation"] if d["kind"] == "merge")
    assert fig["beta.C1"] == pytest.approx(0.3, abs=1e-3)
    assert fig["beta.C2"] == pytest.approx(0.2, abs=1e-3)
    assert [c["status"] for c in data["merge_fit"]["candidates"]] == ["contributes"] * 2
    text = _cli(*base, *flags)
    assert text.returncode == 0 and "## Merge fit" in text.stdout and "| C2 |" in text.stdout
    many = _cli(*base, *flags, *flags, "--baseline", str(zoo["c3"]))
    assert many.returncode == 2 and "at most 4" in many.stderr
    helped = _cli("audit", "--help")
    assert "--baseline PATH" in helped.stdout and "repeat" in helped.stdout


def test_fit_multi_recovers_every_share_and_refuses_collinear_columns() -> None:
    rng = np.random.default_rng(0)
    a, c1, c2 = (rng.standard_normal(4000) for _ in range(3))
    noise = 0.05 * rng.standard_normal(4000)
    fit = fit_multi(a, 0.5 * a + 0.3 * c1 + 0.2 * c2 + noise, [c1, c2])
    assert fit is not None
    assert fit.alpha == pytest.approx(0.5, abs=0.01)
    assert fit.betas == pytest.approx((0.3, 0.2), abs=0.01)
    assert min(fit.t_betas) > 100 and fit.residual < 0.1
    unrelated = fit_multi(a, a + noise, [c1, c2])
    assert unrelated is not None and max(unrelated.t_betas) < 4
    assert fit_multi(a, a, [c1, c1]) is None  # two equal candidates: not separable
    assert fit_multi(a, a, [2 * a]) is None  # a candidate that is A scaled
    assert spanned(0.5 * a + 0.5 * c1, [a, c1]) == pytest.approx(0.0, abs=1e-12)
    assert spanned(c2, [a, c1]) == pytest.approx(1.0, abs=0.05)
