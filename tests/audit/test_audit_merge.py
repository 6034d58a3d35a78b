"""Linear merges named with --baseline: B = 0.6·A + 0.4·C written as real safetensors files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from companion.audit import synth
from companion.audit.checkpoint import open_checkpoint
from companion.audit.merge import fit_tensor
from companion.audit.safetensors import decode
from companion.audit.schemas import AuditResult
from companion.toolbox import run_tool
from companion.tools import ToolContext

Weights = dict[str, Any]


def _mix(a: Weights, c: Weights, alpha: float, beta: float) -> Weights:
    """α·A + β·C per tensor (float32)."""
    return {k: (alpha * a[k] + beta * c[k]).astype(np.float32) for k in a}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A, C (independent), merges of them, a fine-tune of A and an unrelated model."""
    root = tmp_path_factory.mktemp("merge")
    spec = synth.Spec()
    a, c = synth.base(spec, 0), synth.base(spec, 100)
    ft = synth.finetune(a, seed=1)
    models = {
        "a": a,
        "c": c,
        "linear": _mix(a, c, 0.6, 0.4),
        "bf16": synth.cast(_mix(a, c, 0.7, 0.3)),
        "soup": _mix(a, ft, 0.5, 0.5),  # two fine-tunes of one base averaged
        "merge_ft": synth.finetune(_mix(a, c, 0.6, 0.4), seed=4, update=0.1, noise=0.1),
        "ft": ft,
        "unrelated": synth.base(spec, 101),
        "sibling": synth.finetune(a, seed=9),  # another fine-tune of A: related to A, not to B
    }
    return {n: synth.save(root / n, w, spec) for n, w in models.items()}


def audit(a: Path, b: Path, c: Path | None = None) -> AuditResult:
    """Audit B against A (with baseline C)."""
    args = {"a": str(a), "b": str(b)} | ({"baseline": str(c)} if c else {})
    r = run_tool("audit.compare", args, ToolContext())
    assert isinstance(r, AuditResult)
    return r


def _merge(r: AuditResult) -> dict[str, Any] | None:
    """The merge derivation's figures, if named."""
    return next((dict(d.figures) for d in r.derivation if d.kind == "merge"), None)


def test_linear_merge_gives_alpha_and_beta(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["linear"], zoo["c"])
    assert r.verdict == "derived"
    fig = _merge(r)
    assert fig is not None
    assert fig["alpha"] == pytest.approx(0.6, abs=1e-3)
    assert fig["beta"] == pytest.approx(0.4, abs=1e-3)
    assert fig["beta_iqr"] < 1e-3 and fig["residual_median"] < 1e-3
    assert fig["tensors"] == 30  # every matrix shared by A, B and C
    kinds = [d.kind for d in r.derivation]
    assert "fine_tune" not in kinds and "noise_added" not in kinds  # the merge explains B - A


def test_bf16_merge_and_a_model_soup(zoo: dict[str, Path]) -> None:
    fig = _merge(audit(zoo["a"], zoo["bf16"], zoo["c"]))
    assert fig is not None
    assert fig["alpha"] == pytest.approx(0.7, abs=5e-3) and fig["beta"] == pytest.approx(
        0.3, abs=5e-3
    )
    soup = _merge(audit(zoo["a"], zoo["soup"], zoo["ft"]))
    assert soup is not None  # A and C related (C a fine-tune of A): still separable
    assert soup["alpha"] == pytest.approx(0.5, abs=1e-2) and soup["beta"] == pytest.approx(
        0.5, abs=1e-2
    )


def test_merge_then_fine_tuned_is_still_named(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["merge_ft"], zoo["c"])
    fig = _merge(r)
    assert fig is not None
    assert fig["beta"] == pytest.approx(0.4, abs=0.05) and fig["residual_median"] > 0.01
    assert next(d for d in r.derivation if d.kind == "merge").confidence == "medium"


def test_unrelated_baseline_names_no_merge(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["ft"], zoo["unrelated"])
    assert r.verdict == "derived"
    assert _merge(r) is None
    assert "fine_tune" in [d.kind for d in r.derivation]
    # and the per-tensor fit over whole tensors of the real files puts β at zero
    a, b, c = (open_checkpoint(zoo[n]) for n in ("a", "ft", "unrelated"))
    try:
        betas = []
        for name in sorted(a.tensors):
            if len(a.tensors[name].info.shape) != 2:
                continue
            x = [decode(ck.tensors[name].file.read(name), np.float64) for ck in (a, b, c)]
            fit = fit_tensor(*x)
            assert fit is not None
            betas.append(fit.beta)
        assert abs(float(np.median(betas))) < 0.01 and max(map(abs, betas)) < 0.05
    finally:
        for ck in (a, b, c):
            ck.close()


def test_a_sibling_fine_tune_as_baseline_names_no_merge(zoo: dict[str, Path]) -> None:
    r = audit(zoo["a"], zoo["ft"], zoo["sibling"])
    assert r.verdict == "derived" and _merge(r) is None


def test_no_baseline_no_merge_and_unrelated_pair_stays_independent(zoo: dict[str, Path]) -> None:
    assert _merge(audit(zoo["a"], zoo["linear"])) is None  # nothing to fit C with
    r = audit(zoo["a"], zoo["unrelated"], zoo["c"])
    assert r.verdict == "independent" and _merge(r) is None


def test_fit_tensor_edge_cases() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(1000)
    assert fit_tensor(a, a, a) is None  # A and C identical: α and β not separable
    assert fit_tensor(a[:4], a[:4], a[:4]) is None
    nan = a.copy()
    nan[3] = np.nan
    assert fit_tensor(nan, a, rng.standard_normal(1000)) is None
    c = rng.standard_normal(1000).astype(ml_dtypes.bfloat16)
    fit = fit_tensor(a, 0.25 * a + 0.75 * np.asarray(c, np.float64), c)
    assert fit is not None and fit.beta == pytest.approx(0.75) and fit.t_beta > 1e3
