"""verify and export: reproduced vs mismatch (files, numbers, tolerance), bundles, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.store_tools import make_pair

from companion.errors import InputError
from companion.settings import Settings
from companion.store.schemas import ExportResult, VerifyResult
from companion.toolbox import run_tool
from companion.tools import ToolContext

CLI = (
    "import sys, helpers.store_tools; from companion.cli import main; sys.exit(main(sys.argv[1:]))"
)


def audit(ctx: ToolContext, tmp_path: Path, **extra: Any) -> tuple[str, Path, Path]:
    a, b = make_pair(tmp_path / "ckpt")
    result = run_tool("audit.test_compare", {"a": str(a), "b": str(b), **extra}, ctx)
    return str(result.record_id), a, b  # type: ignore[attr-defined]


def verify(ctx: ToolContext, target: str, **args: Any) -> VerifyResult:
    result = run_tool("store.verify", {"target": target, **args}, ctx)
    assert isinstance(result, VerifyResult)
    return result


def test_untouched_audit_is_reproduced(ctx: ToolContext, tmp_path: Path) -> None:
    rid, _, _ = audit(ctx, tmp_path)
    result = verify(ctx, rid[:6])  # a unique prefix is enough
    assert result.status == "reproduced", result.to_markdown()
    assert result.record_id == rid and result.tool == "audit.test_compare"
    assert [f.status for f in result.files] == ["ok", "ok"]
    assert result.values_compared > 8 * 9  # every metric of every row, plus verdict/reasons
    assert "1e-09 + 1e-06 * |recorded|" in result.tolerance
    assert "reproduced" in result.to_markdown()


def test_changed_file_is_a_mismatch_naming_the_file_and_numbers(
    ctx: ToolContext, tmp_path: Path
) -> None:
    rid, a, b = audit(ctx, tmp_path)
    data = bytearray(b.read_bytes())
    data[:512] = bytes(255 - x for x in data[:512])  # only the first chunk changes
    b.write_bytes(bytes(data))
    result = verify(ctx, rid)
    assert result.status == "mismatch"
    assert [(f.path, f.status) for f in result.files] == [(str(a), "ok"), (str(b), "changed")]
    where = {d.where for d in result.differences}
    assert "per_tensor[model.layers.0.input_layernorm.weight].pearson" in where
    assert not any("layers.1." in w for w in where)  # untouched chunks still agree
    md = result.to_markdown()
    assert "mismatch" in md and "changed" in md and "layers.0.input_layernorm" in md


def test_number_drift_respects_the_stated_tolerance(ctx: ToolContext, tmp_path: Path) -> None:
    jitter = tmp_path / "jitter.txt"
    jitter.write_text("0")
    rid, _, _ = audit(ctx, tmp_path, jitter_file=str(jitter))
    jitter.write_text("1e-12")  # far inside the default tolerance
    assert verify(ctx, rid).status == "reproduced"
    strict = verify(ctx, rid, rtol=0, atol=0)
    assert strict.status == "mismatch" and all(f.status == "ok" for f in strict.files)
    assert {d.where.rsplit(".", 1)[-1] for d in strict.differences} >= {"pearson", "z"}
    jitter.write_text("0.01")
    drift = verify(ctx, rid)
    assert drift.status == "mismatch"
    first = next(d for d in drift.differences if d.where.endswith("].pearson"))
    assert first.actual == pytest.approx(first.expected + 0.01)


def test_missing_input_is_reported_with_the_rerun_error(ctx: ToolContext, tmp_path: Path) -> None:
    rid, a, _ = audit(ctx, tmp_path)
    a.unlink()
    result = verify(ctx, rid)
    assert result.status == "mismatch"
    assert result.files[0].status == "missing" and result.rerun_error is not None


def test_bundle_saved_result_and_manifest_files_verify(
    ctx: ToolContext, settings: Settings, tmp_path: Path
) -> None:
    a, b = make_pair(tmp_path / "ckpt")
    result = run_tool("audit.test_compare", {"a": str(a), "b": str(b)}, ctx)
    rid = str(result.record_id)  # type: ignore[attr-defined]
    exported = run_tool(
        "store.export", {"id": rid, "format": "json", "output": str(tmp_path / "b.json")}, ctx
    )
    assert isinstance(exported, ExportResult) and exported.written == str(tmp_path / "b.json")
    bundle = json.loads((tmp_path / "b.json").read_text())
    assert bundle["id"] == rid and bundle["verdict"] == result.verdict  # type: ignore[attr-defined]
    assert bundle["manifest"]["inputs"][1]["sha256"] == result.manifest.inputs[1].sha256  # type: ignore[attr-defined]
    assert [m["name"] for m in bundle["models"]] == ["base", "tuned"]
    assert bundle["models"][0]["files"][0]["path"] == str(a)
    assert bundle["result"]["per_tensor"] == json.loads(result.model_dump_json())["per_tensor"]
    assert verify(ctx, str(tmp_path / "b.json")).status == "reproduced"
    saved = tmp_path / "result.json"
    saved.write_text(result.model_dump_json())
    assert verify(ctx, str(saved)).status == "reproduced"
    manifest = tmp_path / "MANIFEST.json"
    manifest.write_text(result.manifest.model_dump_json())  # type: ignore[attr-defined]
    via_manifest = verify(ctx, str(manifest))
    assert via_manifest.status == "reproduced" and via_manifest.record_id == rid
    # A third party without this store: the bundle alone is enough.
    other = ToolContext(settings=Settings(home=tmp_path / "elsewhere"), roots=[tmp_path])
    assert verify(other, str(tmp_path / "b.json")).status == "reproduced"
    with pytest.raises(InputError, match="No recorded result"):
        verify(other, str(manifest))


def test_markdown_bundle_is_self_contained(ctx: ToolContext, tmp_path: Path) -> None:
    rid, a, b = audit(ctx, tmp_path)
    md = run_tool("store.export", {"id": rid}, ctx).to_markdown()  # type: ignore[attr-defined]
    assert md.startswith(f"# Evidence bundle {rid}: audit.test_compare")
    for needle in (
        "Verdict: **derived**",
        str(a),
        "## Parameters",
        "companion verify",
        '"per_tensor"',
    ):
        assert needle in md
    from companion.manifest import sha256_file

    assert sha256_file(b) in md


def test_relative_parameters_verify_from_another_directory(
    settings: Settings, tmp_path: Path
) -> None:
    from companion.store import recorder_for

    make_pair(tmp_path / "proj" / "ckpt")
    here = ToolContext(
        settings=settings, roots=[tmp_path / "proj"], recorder=recorder_for(settings)
    )
    args = {"a": "ckpt/base/model.safetensors", "b": "ckpt/tuned/model.safetensors"}
    rid = run_tool("audit.test_compare", args, here).record_id  # type: ignore[attr-defined]
    elsewhere = ToolContext(settings=settings, roots=[tmp_path])
    assert verify(elsewhere, str(rid)).status == "reproduced"


def test_unknown_ids_and_unverifiable_targets(ctx: ToolContext, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No record 'deadbeef'") as err:
        verify(ctx, "deadbeef")
    assert err.value.hint is not None and "companion query" in err.value.hint
    fake = tmp_path / "m.json"
    manifest = {"tool": "audit.query", "parameters": {}, "inputs": []}
    fake.write_text(json.dumps({"manifest": manifest, "result": {}}))
    with pytest.raises(InputError, match="does not record"):
        verify(ctx, str(fake))
    fake.write_text("not json")
    with pytest.raises(InputError, match="as JSON"):
        verify(ctx, str(fake))
    with pytest.raises(InputError, match="No record"):
        run_tool("store.export", {"id": "0000"}, ctx)


@pytest.mark.parametrize(
    ("inputs", "where"),
    [
        ([{"path": "f.txt", "sha256": "x"}], "inputs.0.size"),
        (["f.txt"], "inputs.0"),
        ([{"path": "hf://a/b", "sha256": "x", "sha256_from": "remote"}], "inputs.0.size"),
        (7, "inputs"),
    ],
)
def test_an_edited_manifest_is_refused_naming_the_field(
    ctx: ToolContext, tmp_path: Path, inputs: Any, where: str
) -> None:
    """Hand-edited bundles used to end `companion verify` with exit 70 (KeyError, ...)."""
    bundle = tmp_path / "b.json"
    manifest = {"tool": "audit.compare", "parameters": {}, "inputs": inputs}
    bundle.write_text(json.dumps({"manifest": manifest, "result": {}}))
    with pytest.raises(InputError) as err:
        verify(ctx, str(bundle))
    assert f"not one companion writes: {where}:" in err.value.text
    assert err.value.hint and "companion export" in err.value.hint


def test_cli_query_json_ids_work_with_verify_and_export(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    a, b = make_pair(tmp_path / "ckpt")
    env = store_env

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CLI, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    for chunks in ("4", "6"):
        assert cli("test-audit", "--a", str(a), "--b", str(b), "--chunks", chunks).returncode == 0
    listed = cli("query", "--json")
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    assert [r["n_tensors"] for r in records] == [6, 4]  # newest first
    rid = records[0]["id"]
    verified = cli("verify", rid, "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["status"] == "reproduced"
    bundle = cli("export", rid, "--format", "json", "--json")
    assert json.loads(bundle.stdout)["id"] == rid
    (tmp_path / "bundle.json").write_text(bundle.stdout)
    assert json.loads(cli("verify", "bundle.json", "--json").stdout)["status"] == "reproduced"
    missing = cli("verify", "ffffffffffff")
    assert missing.returncode == 2 and "companion query" in missing.stderr
