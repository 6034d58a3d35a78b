"""Fingerprints see through exact symmetries; identify names the parent with a calibrated p."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from companion.audit.safetensors import write_safetensors
from companion.cli import main
from companion.errors import CompanionError
from companion.fingerprint import features as F
from companion.fingerprint.engine import feature_map, fingerprint_checkpoint
from companion.fingerprint.schemas import FingerprintResult, IdentifyResult
from companion.jobs import Job
from companion.tools import ToolContext

UNRELATED = 50  # as in conftest.py
DERIVED = (
    "permuted",
    "rotated",
    "quantized",
    "vocab_extended",
    "pruned",
    "finetuned",
    "all_at_once",
)


def test_exact_symmetries_leave_the_fingerprint_unchanged(zoo_dir: Path) -> None:
    base = feature_map(fingerprint_checkpoint(zoo_dir / "base", Job()))
    for name in ("permuted", "rotated"):
        r, shared = F.pearson_shared(
            base, feature_map(fingerprint_checkpoint(zoo_dir / name, Job()))
        )
        assert shared == len(base) and r is not None and r > 0.999, name


def test_fingerprints_are_recorded_once_per_model_and_small(stored: ToolContext) -> None:
    path = stored.settings.resolved_store_path()
    again = stored.run("fingerprint.compute", {"paths": [str(Path(stored.roots[0]) / "base")]})
    assert isinstance(again, FingerprintResult) and again.record_id
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT status, length(sketch) + length(data), model_id FROM fingerprints")
    rows = rows.fetchall()
    assert len(rows) == UNRELATED + 1  # the repeat replaced its row instead of adding one
    assert all(status == "ok" and size < 4096 and model for status, size, model in rows)


@pytest.mark.parametrize("name", DERIVED)
def test_identify_names_the_parent_of_a_derivative(stored: ToolContext, name: str) -> None:
    result = stored.run("fingerprint.identify", {"path": str(Path(stored.roots[0]) / name)})
    assert isinstance(result, IdentifyResult)
    best = result.candidates[0]
    assert Path(best.path).name == "base", result.to_markdown()
    assert best.related and best.p * (UNRELATED + 1) < 0.01
    assert not any(c.related for c in result.candidates[1:]), result.to_markdown()
    print(f"{name}: score {best.score:.3f} p {best.p:.2g} exact r {best.exact_r}")


def test_identify_names_no_parent_for_an_independent_model(stored: ToolContext) -> None:
    result = stored.run(
        "fingerprint.identify", {"path": str(Path(stored.roots[0]) / "independent")}
    )
    assert isinstance(result, IdentifyResult)
    assert result.parent is None and result.candidates, result.to_markdown()
    assert result.null.draws >= 200 and min(c.p for c in result.candidates) > 1e-4


def test_stored_unrelated_models_find_no_parent_among_the_others(stored: ToolContext) -> None:
    # Each stored model is excluded from its own search (same content), leaving only strangers.
    false = 0
    for seed in range(0, UNRELATED, 5):
        path = str(Path(stored.roots[0]) / f"unrelated-{seed}")
        result = stored.run("fingerprint.identify", {"path": path, "top": 3})
        assert isinstance(result, IdentifyResult) and result.stored_as
        false += result.parent is not None
    assert false == 0


def test_identify_json_lists_candidates_best_first(
    stored: ToolContext, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMPANION_HOME", str(stored.settings.home))
    path = str(Path(stored.roots[0]) / "all_at_once")
    assert main(["identify", path, "--top", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cands = data["candidates"]
    assert [set(c) >= {"path", "model_id", "score", "p", "related"} for c in cands] == [True] * 3
    assert cands[0]["related"] and Path(cands[0]["path"]).name == "base"
    assert [c["score"] for c in cands] == sorted((c["score"] for c in cands), reverse=True)


def test_confirm_runs_the_full_audit_on_the_related_candidate(stored: ToolContext) -> None:
    path = str(Path(stored.roots[0]) / "finetuned")
    result = stored.run("fingerprint.identify", {"path": path, "top": 2, "confirm": True})
    assert isinstance(result, IdentifyResult)
    assert result.candidates[0].audit_verdict == "derived"
    assert result.candidates[1].audit_verdict is None


def test_a_bad_checkpoint_among_good_ones_is_recorded_as_failed(
    stored: ToolContext, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    good = str(Path(stored.roots[0]) / "independent")
    result = stored.run("fingerprint.compute", {"paths": [good, str(bad)]})
    assert isinstance(result, FingerprintResult)
    assert [f.status for f in result.fingerprints] == ["ok", "failed"]
    assert "bad.safetensors" in (result.fingerprints[1].error or "")


def test_a_lone_failed_fingerprint_names_its_next_step_once(
    stored: ToolContext, tmp_path: Path
) -> None:
    layerless = tmp_path / "x.safetensors"
    write_safetensors(layerless, {"foo": np.ones(16, dtype="<f4")})
    with pytest.raises(CompanionError) as err:
        stored.run("fingerprint.compute", {"paths": [str(layerless)]})
    assert err.value.text.count("Next step:") == 1, err.value.text
    assert "named layers" in err.value.text
