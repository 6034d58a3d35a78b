"""The CLI: version, generated subcommands, JSON output, clean errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.rawlsp import run_cli

from companion import __version__


def test_version() -> None:
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"companion {__version__}"


def test_scan_json(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "qwen3", "hidden_size": 8}')
    (tmp_path / "m" / "model-00001-of-00002.safetensors").write_bytes(b"x" * 10)
    (tmp_path / "m" / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    (tmp_path / "trainer_state.json").write_text('{"log_history": []}')
    (tmp_path / "run.log").write_bytes(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n"
    )
    out = run_cli("scan", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    kinds = {Path(a["path"]).name: a["kind"] for a in data["artifacts"]}
    assert kinds == {
        "config.json": "config",
        "model-00001-of-00002.safetensors": "checkpoint",
        "model.safetensors.index.json": "safetensors_index",
        "trainer_state.json": "training_log",
        "run.log": "lfs_pointer",
    }


def test_user_errors_exit_2_with_next_step(tmp_path: Path) -> None:
    out = run_cli("scan", str(tmp_path / "nope"))
    assert out.returncode == 2
    assert "does not exist" in out.stderr and "Next step" in out.stderr
    out = run_cli("scan", str(tmp_path), "--max-files", "zero")
    assert out.returncode == 2 and "max_files" in out.stderr


def test_tools_share_one_declaration() -> None:
    from companion.toolbox import llm_tools
    from companion.tools import get_tool

    t = get_tool("companion.workspace.scan")
    schemas = {s["function"]["name"]: s for s in llm_tools()}
    assert schemas["workspace_scan"]["function"]["parameters"] == t.input_model.model_json_schema()
    assert t.command == "companion.workspace.scan" and t.cli == "scan"


def test_symlink_loop_argument_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    out = run_cli("scan", str(tmp_path / "loop" / "x"))
    assert out.returncode == 2 and "symlink loop" in out.stderr
