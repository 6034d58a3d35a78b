"""audit.query: every filter, sorting, pagination, formats, and injection attempts."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from helpers.store_tools import make_pair

from companion.errors import InputError
from companion.settings import Settings
from companion.store.backend import Conn
from companion.store.schemas import QueryResult
from companion.toolbox import run_tool
from companion.tools import ToolContext


@pytest.fixture
def recs(ctx: ToolContext, settings: Settings, tmp_path: Path) -> dict[str, Any]:
    """Four runs: a related audit, an unrelated audit, an evidence summary, a tokenizer run."""
    a, b = make_pair(tmp_path / "rel", related=True, seed=1)
    c, d = make_pair(tmp_path / "unrel", related=False, seed=2)
    (tmp_path / "unrel" / "other").mkdir()
    other = d.rename(tmp_path / "unrel" / "other" / "weights.safetensors")
    log = tmp_path / "train.log"
    log.write_text("12.2\n3.0\n")
    va, vb = tmp_path / "va.txt", tmp_path / "vb.txt"
    va.write_text("x y")
    vb.write_text("x z")
    out = {
        "derived": run_tool("audit.test_compare", {"a": str(a), "b": str(b), "chunks": 10}, ctx),
        "independent": run_tool(
            "audit.test_compare", {"a": str(c), "b": str(other), "chunks": 10}, ctx
        ),
        "evidence": run_tool("evidence.test_summary", {"path": str(log)}, ctx),
        "tokenizer": run_tool("tokenizer.test_compare", {"a": str(va), "b": str(vb)}, ctx),
    }
    assert out["derived"].verdict == "derived"  # type: ignore[attr-defined]
    assert out["independent"].verdict == "independent"  # type: ignore[attr-defined]
    return {**out, "paths": (a, b, c, other)}


def q(ctx: ToolContext, **args: Any) -> QueryResult:
    result = run_tool("audit.query", args, ctx)
    assert isinstance(result, QueryResult)
    return result


def ids(result: QueryResult) -> list[str]:
    return [r.id for r in result.records]


def rid(recs: dict[str, Any], key: str) -> str:
    return str(recs[key].record_id)


def test_all_records_newest_first_with_models(ctx: ToolContext, recs: dict[str, Any]) -> None:
    result = q(ctx)
    assert ids(result) == [
        rid(recs, k) for k in ("tokenizer", "evidence", "independent", "derived")
    ]
    assert result.total == 4 and not result.total_capped
    audit = result.records[3]
    assert [(m.side, m.name) for m in audit.models] == [("a", "base"), ("b", "tuned")]
    assert audit.n_tensors == 10 and audit.verdict == "derived"
    assert q(ctx, sort="oldest").records[0].id == rid(recs, "derived")


def test_model_filters_by_name_path_and_sha(
    ctx: ToolContext, db: Conn, recs: dict[str, Any]
) -> None:
    other = recs["paths"][3]
    assert ids(q(ctx, model=["tuned"])) == [rid(recs, "derived")]
    assert ids(q(ctx, model=[str(other)])) == [rid(recs, "independent")]
    assert ids(q(ctx, model=[str(other.parent)])) == [rid(recs, "independent")]
    assert ids(q(ctx, model="rel/tuned")) == [rid(recs, "derived")]  # relative to the root
    file_sha = recs["derived"].manifest.inputs[1].sha256
    assert ids(q(ctx, model=[file_sha[:10]])) == [rid(recs, "derived")]
    (content,) = db.execute("SELECT content_sha256 FROM models WHERE name='weights'").fetchone()
    assert ids(q(ctx, model=[content[:8].upper()])) == [rid(recs, "independent")]
    assert ids(q(ctx, model="tuned,weights")) == [rid(recs, "independent"), rid(recs, "derived")]
    assert ids(q(ctx, model=["nosuchmodel"])) == []


def test_pair_verdict_kind_and_dates(ctx: ToolContext, db: Conn, recs: dict[str, Any]) -> None:
    assert ids(q(ctx, pair="tuned,base")) == [rid(recs, "derived")]
    assert ids(q(ctx, pair=["tuned", "other"])) == []
    assert ids(q(ctx, verdict=["derived"])) == [rid(recs, "derived")]
    assert ids(q(ctx, kind=["audit.*"], sort="oldest")) == [
        rid(recs, "derived"),
        rid(recs, "independent"),
    ]
    assert ids(q(ctx, kind="evidence.test_summary")) == [rid(recs, "evidence")]
    db.execute(
        "UPDATE records SET created = '2020-01-01T10:00:00.000000Z' WHERE uid = ?",
        (rid(recs, "independent"),),
    )
    assert ids(q(ctx, until="2020-01-01")) == [rid(recs, "independent")]
    assert ids(q(ctx, until="2020-01-01T09:00")) == []
    assert rid(recs, "independent") not in ids(q(ctx, since="2021-06-01"))
    assert len(ids(q(ctx, since="1d"))) == 3
    with pytest.raises(InputError, match="Cannot read the date"):
        q(ctx, since="last tuesday")


def test_tensor_filters_role_and_thresholds(ctx: ToolContext, recs: dict[str, Any]) -> None:
    derived = recs["derived"].per_tensor
    result = q(ctx, tensor="*.input_layernorm.weight", where=["pearson>0.9"])
    assert ids(result) == [rid(recs, "derived")]
    hits = result.records[0].tensors
    expected = [t for t in derived if t.role == "attn_norm" and t.pearson > 0.9]
    assert result.records[0].tensor_matches == len(expected) == 5
    assert [(h.name_a, h.pearson, h.z) for h in hits] == [
        (t.name_a, t.pearson, t.z) for t in expected
    ]
    assert hits[0].extra == {"baselines.shuffle_pearson": expected[0].baselines["shuffle_pearson"]}
    assert ids(q(ctx, role=["mlp"], where=["pearson < 0.3"])) == [rid(recs, "independent")]
    assert len(ids(q(ctx, where="baselines.shuffle_pearson<0.5"))) == 2  # an extra, not a column
    limited = q(ctx, role="mlp", tensor_limit=2, kind="audit.*")
    assert [r.tensor_matches for r in limited.records] == [5, 5]
    assert [len(r.tensors) for r in limited.records] == [2, 2]
    assert ids(q(ctx, where=["z>=1e9"])) == []


def test_pagination_and_formats(ctx: ToolContext, recs: dict[str, Any]) -> None:
    page = q(ctx, limit=1, offset=1)
    assert ids(page) == [rid(recs, "evidence")] and page.total == 4
    assert "Records 2-2 of 4" in page.to_markdown()
    rows = list(csv.reader(io.StringIO(q(ctx, format="csv").to_csv())))
    assert rows[0] == ["id", "created", "kind", "verdict", "models", "reason"]
    assert [r[0] for r in rows[1:]] == ids(q(ctx))
    tensor_csv = list(csv.DictReader(io.StringIO(q(ctx, role="mlp", kind="audit.*").to_csv())))
    assert len(tensor_csv) == 10 and {r["role"] for r in tensor_csv} == {"mlp"}
    table = q(ctx, format="table").to_markdown()
    assert table.startswith("```text\nid") and rid(recs, "derived") in table
    md = q(ctx, format="md", role="mlp").to_markdown()
    assert "| id | kind | verdict | models | created |" in md
    assert f"## {rid(recs, 'derived')}: 5 matching tensors" in md
    assert '"id": "' in q(ctx, format="json").to_markdown()


INJECTIONS = [
    "x' OR '1'='1",
    "'; DROP TABLE records; --",
    '") OR 1=1 --',
    "* OR 1=1",
    "%",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_in_text_filters_is_just_text(
    ctx: ToolContext, db: Conn, recs: dict[str, Any], payload: str
) -> None:
    for field in ("model", "verdict", "role", "pair"):
        value = [payload, payload] if field == "pair" else [payload]
        assert ids(q(ctx, **{field: value})) == [], field
    assert ids(q(ctx, kind=[payload])) == []
    assert ids(q(ctx, tensor=payload)) == []
    assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 4
    assert db.execute("SELECT count(*) FROM per_tensor").fetchone()[0] == 20


@pytest.mark.parametrize(
    "where",
    [
        "pearson>0 OR 1=1",
        "pearson>0; DROP TABLE records",
        "pearson) > 0 --",
        "1=1",
        'x"]") > 0',
        "pearson > 'a'",
        "pearson>nan",
    ],
)
def test_injection_in_thresholds_is_refused(
    ctx: ToolContext, db: Conn, recs: dict[str, Any], where: str
) -> None:
    with pytest.raises(InputError, match="metric threshold") as err:
        q(ctx, where=[where])
    assert err.value.hint is not None and "pearson>0.5" in err.value.hint
    assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 4


def test_bad_arguments_are_input_errors(ctx: ToolContext) -> None:
    with pytest.raises(InputError, match="exactly two models"):
        q(ctx, pair=["one"])
    with pytest.raises(InputError, match="limit"):
        q(ctx, limit=0)
    assert q(ctx).records == []  # an empty (new) store answers, it does not fail
