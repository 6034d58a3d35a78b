"""The shipped Solar example reproduces the public conclusion from public figures."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from companion.case import solar
from companion.case.schemas import CaseResult
from companion.tools import ToolContext


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reconstructed case files."""
    root = tmp_path_factory.mktemp("solar")
    solar.build(root)
    return root


def test_solar_is_independent_and_the_claim_supported(case_dir: Path, ctx: ToolContext) -> None:
    r = ctx.run(
        "case.investigate",
        {
            "a": str(case_dir / "glm-4.5-air"),
            "b": str(case_dir / "solar-open-100b"),
            "claimed": "trained from scratch",
        },
    )
    assert isinstance(r, CaseResult)
    assert r.verdict == "independent" and r.claim_verdict == "supports"
    log = next(e for e in r.chain if e.source == "log B")
    assert log.verdict == "from_scratch" and "12.19" in log.baseline
    cos = statistics.median(p.cosine for p in r.layers if p.cosine is not None)
    pearson = statistics.median(p.pearson for p in r.layers if p.pearson is not None)
    assert 0.985 < cos < 0.995 and abs(pearson) < 0.05  # the cosine trap, as published
    assert r.shapes_compatible is False
    assert {x.field for x in r.arch_rows} >= {"num_heads", "vocab_size", "first_k_dense"}
    assert any("train-loss.csv" in x for x in r.reconstructed)
    assert any("model.safetensors" in x and "synthetic" in x for x in r.reconstructed)
    assert "Reconstructions" in r.to_markdown()


def test_sibling_pair_is_derived(case_dir: Path, ctx: ToolContext) -> None:
    r = ctx.run(
        "case.investigate",
        {"a": str(case_dir / "glm-4.5-air"), "b": str(case_dir / "intellect-3")},
    )
    assert isinstance(r, CaseResult) and r.verdict == "derived"
    assert statistics.median(p.pearson for p in r.layers if p.pearson is not None) > 0.99


def test_first_loss_sits_near_ln_v() -> None:
    run = solar.loss_run()
    assert abs(run.loss[0] - 12.19) < 0.15
