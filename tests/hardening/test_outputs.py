"""Class 4: read-only tools write nothing in a confined context, and never overwrite unasked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.hostile import trainer_state

from companion.cli.main import EXIT_USER_ERROR, main
from companion.errors import InputError
from companion.toolbox import llm_tools, run_tool
from companion.tools import ToolContext

OUTPUTS = {"report", "plot", "output", "overwrite"}


def test_llm_schemas_offer_no_output_parameters() -> None:
    for schema in llm_tools():
        params = schema["function"]["parameters"]
        assert not OUTPUTS & set(params.get("properties", {})), schema["function"]["name"]
        assert not OUTPUTS & set(params.get("required", []))


def test_confined_run_refuses_output_parameters(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "llama"}')
    ctx = ToolContext(roots=[tmp_path], confine=True)
    log = trainer_state(tmp_path / "run")
    with pytest.raises(InputError, match="read-only"):
        run_tool("audit.compare", {"a": str(tmp_path), "b": str(tmp_path), "report": str(cfg)}, ctx)
    with pytest.raises(InputError, match="read-only"):
        run_tool("evidence.summarize", {"paths": [str(log)], "plot": str(tmp_path / "p.png")}, ctx)
    assert cfg.read_text() == '{"model_type": "llama"}'
    assert not (tmp_path / "p.png").exists()


def test_cli_overwrites_only_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = trainer_state(tmp_path / "run")
    png = tmp_path / "curve.png"
    png.write_bytes(b"mine")
    args = ["evidence", str(log), "--vocab-size", "1000", "--plot", str(png), "--json"]
    assert main(args) == EXIT_USER_ERROR
    assert "--overwrite" in capsys.readouterr().err
    assert png.read_bytes() == b"mine"
    assert main([*args, "--overwrite"]) == 0
    assert json.loads(capsys.readouterr().out)["plot_png"] == str(png)
    assert png.read_bytes() != b"mine"
