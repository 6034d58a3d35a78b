"""End to end with the real engines: audit.compare and arch.describe recorded, queried, verified."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from companion.audit import synth
from companion.audit.safetensors import write_safetensors
from companion.store.backend import Conn
from companion.store.schemas import QueryResult
from companion.toolbox import run_tool
from companion.tools import ToolContext

FAST = {"null_draws": 50, "sample_size": 1024, "match_layers": 1}


@pytest.fixture
def family(tmp_path: Path) -> dict[str, Path]:
    return synth.family(tmp_path / "ckpt")


def test_real_audit_is_recorded_queried_exported_and_verified(
    ctx: ToolContext, db: Conn, family: dict[str, Path], tmp_path: Path
) -> None:
    derived = run_tool(
        "audit.compare", {"a": str(family["base"]), "b": str(family["finetune"]), **FAST}, ctx
    )
    independent = run_tool(
        "audit.compare", {"a": str(family["base"]), "b": str(family["independent"]), **FAST}, ctx
    )
    assert derived.verdict == "derived" and independent.verdict == "independent"  # type: ignore[attr-defined]
    rid = str(derived.record_id)  # type: ignore[attr-defined]
    n_rows = db.execute(
        "SELECT count(*) FROM per_tensor t JOIN records r ON r.id = t.record_id WHERE r.uid = ?",
        (rid,),
    ).fetchone()[0]
    assert n_rows == len(derived.per_tensor) > 0  # type: ignore[attr-defined]
    stored = db.execute(
        "SELECT t.name_a, t.pearson, t.cosine, t.spearman, t.z, t.extra FROM per_tensor t "
        "JOIN records r ON r.id = t.record_id WHERE r.uid = ? ORDER BY t.id LIMIT 1",
        (rid,),
    ).fetchone()
    first = derived.per_tensor[0]  # type: ignore[attr-defined]
    assert stored[:5] == (
        first.name_a,
        first.metrics.pearson,
        first.metrics.cosine,
        first.metrics.spearman,
        first.z,
    )
    extra = json.loads(stored[5])
    assert extra["baselines.shuffle_pearson_mean"] == first.baselines.shuffle_pearson_mean
    assert extra["group"] == first.group

    by_model = run_tool("audit.query", {"model": ["finetune"]}, ctx)
    assert isinstance(by_model, QueryResult) and [r.id for r in by_model.records] == [rid]
    assert [m.name for m in by_model.records[0].models] == ["base", "finetune"]
    norms = run_tool(
        "audit.query", {"kind": "audit.compare", "tensor": "*norm*", "where": "pearson>0.5"}, ctx
    )
    assert isinstance(norms, QueryResult) and [r.id for r in norms.records] == [rid]
    statement = derived.reasons[0].statement  # type: ignore[attr-defined]
    assert norms.records[0].first_reason(width=100_000) == statement

    attn = run_tool("audit.query", {"role": "attn", "model": "finetune", "tensor_limit": 1000}, ctx)
    assert isinstance(attn, QueryResult)
    expected = [t.name_a for t in derived.per_tensor if t.group == "attn"]  # type: ignore[attr-defined]
    assert expected and [t.name_a for t in attn.records[0].tensors] == expected

    verified = run_tool("store.verify", {"target": rid}, ctx)
    assert verified.status == "reproduced", verified.to_markdown()  # type: ignore[attr-defined]
    md = run_tool("store.export", {"id": rid}, ctx).to_markdown()  # type: ignore[attr-defined]
    assert "## Result" in md and "derived" in md

    # Change one tensor of the fine-tune: the hash and the numbers of that tensor differ.
    from safetensors.numpy import load_file

    weights_file = next(family["finetune"].glob("*.safetensors"))
    tensors = load_file(str(weights_file))
    name = "model.layers.0.input_layernorm.weight"
    tensors[name] = (
        np.random.default_rng(9).normal(1, 0.02, tensors[name].shape).astype(tensors[name].dtype)
    )
    write_safetensors(weights_file, tensors)
    mismatch = run_tool("store.verify", {"target": rid}, ctx)
    assert mismatch.status == "mismatch"  # type: ignore[attr-defined]
    assert any(f.status == "changed" and f.path == str(weights_file) for f in mismatch.files)  # type: ignore[attr-defined]
    assert any(d.where.startswith(f"per_tensor[{name}]") for d in mismatch.differences)  # type: ignore[attr-defined]


def test_arch_describe_fills_the_models_arch_spec(
    ctx: ToolContext, db: Conn, family: dict[str, Path]
) -> None:
    described = run_tool("arch.describe", {"path": str(family["base"] / "config.json")}, ctx)
    name, spec = db.execute("SELECT name, arch_spec FROM models").fetchone()
    assert name == "base"
    assert json.loads(spec) == json.loads(described.spec.model_dump_json())  # type: ignore[attr-defined]
    assert run_tool("store.verify", {"target": described.record_id}, ctx).status == "reproduced"  # type: ignore[attr-defined]


def test_every_engines_demo_run_is_recorded_and_reproduces(
    ctx: ToolContext, db: Conn, tmp_path: Path
) -> None:
    from companion.cli.demo import DEMO_SECTIONS

    sections = [s for s in DEMO_SECTIONS if s.__name__ != "companion.store.demo"]
    for section in sections:
        section.build(tmp_path)
    shown: list[str] = []
    for section in sections:
        section.run(tmp_path, ctx, lambda title, result: shown.append(title))
    listed = run_tool("audit.query", {"limit": 100}, ctx)
    assert isinstance(listed, QueryResult)
    kinds = {r.kind for r in listed.records}
    assert {"audit.compare", "evidence.summarize", "arch.describe", "tokenizer.compare"} <= kinds
    ev = db.execute("SELECT count(*), count(verdict) FROM evidence_summaries").fetchone()
    assert ev[0] >= 1 and ev[0] == ev[1]
    tok = db.execute("SELECT verdict FROM tokenizer_comparisons").fetchall()
    assert tok and all(v in ("same", "extended", "overlapping", "unrelated") for (v,) in tok)
    assert db.execute("SELECT count(*) FROM models WHERE arch_spec IS NOT NULL").fetchone()[0]
    for kind in ("evidence.summarize", "tokenizer.compare"):
        rid = next(r.id for r in listed.records if r.kind == kind)
        result = run_tool("store.verify", {"target": rid}, ctx)
        assert result.status == "reproduced", result.to_markdown()  # type: ignore[attr-defined]
