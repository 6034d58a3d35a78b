"""Exact weight symmetries (hidden permutation, heads, rescales) and derivation names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.audit_checkpoints import audit

from companion.audit import synth
from companion.audit.safetensors import write_safetensors
from companion.audit.schemas import AuditResult
from companion.toolbox import run_tool
from companion.tools import ToolContext


def kinds(r: AuditResult) -> set[str]:
    """Derivation kinds of a result."""
    return {d.kind for d in r.derivation}


@pytest.mark.parametrize("variant", ["hidden_permuted", "hidden_permuted_all"])
def test_hidden_permutation_is_derived_and_named(fam: dict[str, Path], variant: str) -> None:
    r = audit(fam["base"], fam[variant])
    assert r.verdict == "derived", [x.statement for x in r.reasons]
    assert r.reasons[0].kind == "aligned" and r.reasons[0].strength == "strong"
    assert "hidden alignment" in r.reasons[0].statement
    assert r.aligned is not None and r.aligned.hidden is not None
    h = r.aligned.hidden
    assert h.one_to_one == h.dims == synth.Spec().hidden and h.moved > h.dims // 2
    assert h.observed > h.null_mean + 10 * h.null_sd and h.draws >= 19
    perm = next(d for d in r.derivation if d.kind == "permuted")
    assert perm.evasive and perm.figures["hidden_dims_moved"] == h.moved


def test_independent_same_config_is_not_derived(fam: dict[str, Path]) -> None:
    for other in ("independent", "independent2"):
        r = audit(fam["base"], fam[other])
        assert r.verdict == "independent", [x.statement for x in r.reasons]
        assert r.aligned is not None and not r.aligned.related
        assert kinds(r) == {"independent"}


def test_finetune_and_lora_named(fam: dict[str, Path]) -> None:
    ft = audit(fam["base"], fam["finetune"])
    assert "fine_tune" in kinds(ft) and "permuted" not in kinds(ft)
    lora = audit(fam["base"], fam["lora"])
    assert lora.verdict == "derived"
    d = next(d for d in lora.derivation if d.kind == "lora_merged")
    assert all(v <= 2 for k, v in d.figures.items() if k.startswith("rank90."))


def test_other_derivations_named(fam: dict[str, Path]) -> None:
    assert kinds(audit(fam["base"], fam["bf16"])) == {"quantized"}
    assert "depth_pruned" in kinds(audit(fam["base"], fam["pruned"]))
    assert "permuted" in kinds(audit(fam["base"], fam["permuted"]))
    assert "rescaled" in kinds(audit(fam["base"], fam["rescaled"]))


def _pair(root: Path, wa: dict[str, np.ndarray], wb: dict[str, np.ndarray]) -> tuple[Path, Path]:
    """Write two checkpoints (with the synth config) and return their folders."""
    spec = synth.Spec()
    return synth.save(root / "a", wa, spec), synth.save(root / "b", wb, spec)


@pytest.mark.parametrize("fill", ["nan", "zero", "constant"])
def test_degenerate_inputs_are_inconclusive(tmp_path: Path, fill: str) -> None:
    w = synth.base(synth.Spec(), seed=0)
    value = {"nan": np.nan, "zero": 0.0, "constant": 0.5}[fill]
    bad = {k: np.full_like(v, value) for k, v in w.items()}
    r = audit(*_pair(tmp_path, w, bad))
    assert r.verdict == "inconclusive", [x.statement for x in r.reasons]
    assert r.reasons[0].kind == "degenerate"


def test_too_few_parameters_is_inconclusive(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_safetensors(tmp_path / "a/model.safetensors", {"w": rng.standard_normal(64)})
    write_safetensors(tmp_path / "b/model.safetensors", {"w": rng.standard_normal(64)})
    r = audit(tmp_path / "a", tmp_path / "b")
    assert r.verdict == "inconclusive" and r.reasons[0].kind == "degenerate"


def test_buffers_are_excluded_and_listed(tmp_path: Path) -> None:
    spec = synth.Spec()
    wa, wb = synth.base(spec, seed=0), synth.base(spec, seed=100)
    for w in (wa, wb):
        w["embeddings.position_ids"] = np.arange(128, dtype=np.int64)[None, :]
        w["model.layers.0.self_attn.rotary_emb.inv_freq"] = (1e4 ** -np.arange(8.0)).astype(
            np.float32
        )
    r = audit(*_pair(tmp_path, wa, wb))
    assert r.verdict == "independent", [x.statement for x in r.reasons]
    excluded = {e.name for e in r.excluded}
    assert {"embeddings.position_ids", "model.layers.0.self_attn.rotary_emb.inv_freq"} <= excluded
    assert all(t.name_a not in excluded for t in r.per_tensor)


def test_a_config_describing_another_model_does_not_break_alignment(tmp_path: Path) -> None:
    """The residual width comes from the tensors; a stray config.json beside them is ignored."""
    import json

    from safetensors.numpy import save_file

    rng = np.random.default_rng(3)
    a = {}
    for i in range(2):
        a[f"model.layers.{i}.input_layernorm.weight"] = 1 + 0.05 * rng.standard_normal(64)
        a[f"model.layers.{i}.self_attn.q_proj.weight"] = 0.02 * rng.standard_normal((64, 64))
        a[f"model.layers.{i}.mlp.up_proj.weight"] = 0.02 * rng.standard_normal((128, 64))
    b = {k: v + 0.001 * rng.standard_normal(v.shape) for k, v in a.items()}
    for name, weights in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        save_file(
            {k: v.astype(np.float32) for k, v in weights.items()},
            str(tmp_path / name / "model.safetensors"),
        )
        (tmp_path / name / "config.json").write_text(json.dumps({"hidden_size": 4096}))
    result = run_tool(
        "audit.compare", {"a": str(tmp_path / "a"), "b": str(tmp_path / "b")}, ToolContext()
    )
    assert result.verdict == "derived"
