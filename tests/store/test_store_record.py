"""Recording: what a run writes into each table; --no-store; chat transcripts."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.store_tools import make_pair

from companion.settings import Settings
from companion.store import load_conversation, recorder_for, save_conversation
from companion.store.backend import Conn
from companion.store.db import settings_store
from companion.store.record import model_groups, tensor_row
from companion.toolbox import run_tool
from companion.tools import ToolContext


def test_audit_run_writes_record_models_artifacts_and_per_tensor_rows(
    ctx: ToolContext, db: Conn, tmp_path: Path
) -> None:
    a, b = make_pair(tmp_path / "ckpt")
    result = run_tool("audit.test_compare", {"a": str(a), "b": str(b), "chunks": 6}, ctx)
    rid = result.record_id  # type: ignore[attr-defined]
    assert isinstance(rid, str) and len(rid) == 12
    rec = db.execute("SELECT * FROM records WHERE uid = ?", (rid,)).fetchone()
    assert rec["kind"] == "audit.test_compare"
    assert rec["verdict"] == result.verdict  # type: ignore[attr-defined]
    assert json.loads(rec["reasons"]) == result.reasons  # type: ignore[attr-defined]
    assert json.loads(rec["args"]) == {"a": str(a), "b": str(b), "chunks": 6, "jitter_file": None}
    assert json.loads(rec["manifest"])["inputs"][0]["sha256"] == result.manifest.inputs[0].sha256  # type: ignore[attr-defined]
    stored = json.loads(rec["result"])
    assert stored["per_tensor"][3]["pearson"] == result.per_tensor[3].pearson  # type: ignore[attr-defined]
    models = db.execute(
        "SELECT rm.side, m.name, m.path FROM record_models rm JOIN models m ON m.id = rm.model_id "
        "WHERE rm.record_id = ? ORDER BY rm.side",
        (rec["id"],),
    ).fetchall()
    assert [tuple(m) for m in models] == [("a", "base", str(a)), ("b", "tuned", str(b))]
    arts = db.execute("SELECT path, size FROM artifacts ORDER BY path").fetchall()
    assert [tuple(x) for x in arts] == [(str(a), 4096), (str(b), 4096)]
    audit = db.execute("SELECT * FROM audits WHERE record_id = ?", (rec["id"],)).fetchone()
    assert audit["n_tensors"] == 6 and audit["verdict"] == rec["verdict"]
    rows = db.execute(
        "SELECT * FROM per_tensor WHERE record_id = ? ORDER BY id", (rec["id"],)
    ).fetchall()
    assert len(rows) == 6
    first = result.per_tensor[0]  # type: ignore[attr-defined]
    assert (rows[0]["name_a"], rows[0]["role"], rows[0]["layer"]) == (first.name_a, "attn_norm", 0)
    assert rows[0]["pearson"] == first.pearson and rows[0]["z"] == first.z
    assert rows[0]["spearman"] is None  # not reported by this tool
    assert json.loads(rows[0]["extra"]) == {
        "baselines.shuffle_pearson": first.baselines["shuffle_pearson"]
    }


def test_same_content_is_one_model_and_kinds_land_in_their_tables(
    ctx: ToolContext, db: Conn, tmp_path: Path
) -> None:
    a, b = make_pair(tmp_path / "ckpt")
    run_tool("audit.test_compare", {"a": str(a), "b": str(b)}, ctx)
    run_tool("audit.test_compare", {"a": str(b), "b": str(a)}, ctx)
    log = tmp_path / "train.log"
    log.write_text("12.19\n9.5\n")
    run_tool("evidence.test_summary", {"path": str(log)}, ctx)
    va, vb = tmp_path / "va.txt", tmp_path / "vb.txt"
    va.write_text("a b c d")
    vb.write_text("a b c e")
    run_tool("tokenizer.test_compare", {"a": str(va), "b": str(vb)}, ctx)
    assert db.execute("SELECT count(*) FROM models").fetchone()[0] == 5
    assert db.execute("SELECT count(*) FROM audits").fetchone()[0] == 2
    ev = db.execute("SELECT verdict, headline FROM evidence_summaries").fetchone()
    assert ev["verdict"] == "independent"
    assert json.loads(ev["headline"]) == {"verdict": "independent", "first_loss": 12.19, "steps": 2}
    tok = db.execute("SELECT headline FROM tokenizer_comparisons").fetchone()
    assert json.loads(tok["headline"])["overlap"] == pytest.approx(3 / 5)


def test_recording_off_writes_nothing(settings: Settings, tmp_path: Path) -> None:
    off = settings.model_copy(update={"store_enabled": False})
    assert recorder_for(off) is None
    a, b = make_pair(tmp_path / "ckpt")
    ctx = ToolContext(settings=off, roots=[tmp_path], recorder=recorder_for(off))
    result = run_tool("audit.test_compare", {"a": str(a), "b": str(b)}, ctx)
    assert result.record_id is None  # type: ignore[attr-defined]
    assert not settings.resolved_store_path().exists()
    if settings.store_url:  # the database is still empty: not even migrated
        import psycopg

        with psycopg.connect(settings.store_url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
            assert tables == (0,)


def test_cli_records_by_default_and_no_store_skips(
    settings: Settings, store_env: dict[str, str], tmp_path: Path
) -> None:
    a, b = make_pair(tmp_path / "ckpt")
    env = store_env
    code = (
        "import sys, helpers.store_tools; from companion.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    base = [sys.executable, "-c", code, "test-audit", "--a", str(a), "--b", str(b)]
    for extra in ([], ["--no-store"], []):
        out = subprocess.run(
            [*base, *extra, "--json"], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
    with settings_store(settings) as conn:
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 2


def test_tensor_row_finds_nested_metrics_and_drops_nan() -> None:
    row = tensor_row(
        7,
        {
            "name": "w",
            "role": "mlp",
            "layer": 3,
            "metrics": {"pearson": 0.5, "cosine": math.nan},
            "baselines": {"shuffle": {"pearson": 0.01}},
            "z": 4,
        },
    )
    assert row[:5] == (7, "w", "w", "mlp", 3)
    assert row[5:11] == (None, 0.5, None, None, 4.0, None)
    assert json.loads(row[11]) == {"baselines.shuffle.pearson": 0.01}


def test_model_groups_follow_arguments_then_folders(tmp_path: Path) -> None:
    files = [
        {
            "path": str(tmp_path / "x" / "model-00001-of-00002.safetensors"),
            "size": 1,
            "sha256": "1",
        },
        {
            "path": str(tmp_path / "x" / "model-00002-of-00002.safetensors"),
            "size": 1,
            "sha256": "2",
        },
        {"path": str(tmp_path / "y" / "config.json"), "size": 1, "sha256": "3"},
        {"path": str(tmp_path / "z" / "other.bin"), "size": 1, "sha256": "4"},
    ]
    (tmp_path / "x").mkdir()
    groups = model_groups({"a": str(tmp_path / "x"), "b": "y/config.json", "n": "5"}, files)
    assert [(g.side, g.name, len(g.files)) for g in groups] == [
        ("a", "x", 2),
        ("b", "y", 1),
        ("input[0]", "other", 1),
    ]
    assert groups[0].content_sha256 != groups[1].content_sha256


def test_conversations_round_trip(settings: Settings) -> None:
    assert load_conversation(settings, "c1") is None
    messages = [{"role": "user", "content": "was B derived from A?"}]
    save_conversation(settings, "c1", messages)
    save_conversation(settings, "c1", [*messages, {"role": "assistant", "content": "no"}])
    loaded = load_conversation(settings, "c1")
    assert loaded is not None and [m["role"] for m in loaded] == ["user", "assistant"]
