"""Class 3: a confined (chat) run opens nothing outside the workspace, whatever leads there."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers.hostile import trainer_state

from companion.audit.safetensors import write_safetensors
from companion.errors import InputError
from companion.settings import Settings
from companion.toolbox import context, run_tool
from companion.tools import ToolContext


def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace folder and a sibling folder outside it."""
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir()
    outside.mkdir()
    return ws, outside


def confined(ws: Path) -> ToolContext:
    """The context the chat gives tools: confined to the workspace, no store."""
    return ToolContext(roots=[ws], confine=True)


def test_symlink_inside_a_run_folder_is_refused(tmp_path: Path) -> None:
    ws, outside = layout(tmp_path)
    target = trainer_state(outside / "secret")
    (ws / "run").mkdir()
    (ws / "run" / "trainer_state.json").symlink_to(target)
    with pytest.raises(InputError, match="outside the workspace"):
        run_tool("evidence.summarize", {"paths": [str(ws / "run")]}, confined(ws))


def test_shard_leading_outside_is_refused(tmp_path: Path) -> None:
    ws, outside = layout(tmp_path)
    write_safetensors(outside / "s.safetensors", {"w": np.ones((4, 4), np.float32)})
    ck = ws / "ck"
    ck.mkdir()
    (ck / "s.safetensors").symlink_to(outside / "s.safetensors")
    index = {"weight_map": {"w": "s.safetensors"}}
    (ck / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(InputError, match="outside the workspace"):
        run_tool("audit.compare", {"a": str(ck), "b": str(ck)}, confined(ws))


def test_vocab_lookup_is_confined_and_reported(tmp_path: Path) -> None:
    ws, _ = layout(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 1000}))  # above ws
    log = trainer_state(ws / "run")
    args = {"paths": [str(log)]}
    inside = run_tool("evidence.summarize", args, confined(ws))
    assert inside.vocab_size is None  # the config above the workspace was not read
    free = run_tool("evidence.summarize", args, ToolContext(roots=[ws]))
    assert free.vocab_size == 1000 and free.vocab_file == str(tmp_path / "config.json")
    assert "two folders above the log" in (free.vocab_source or "")
    assert math.isclose(free.ln_vocab or 0, math.log(1000))
    near = run_tool("evidence.summarize", {**args, "vocab_search": 0}, ToolContext(roots=[ws]))
    assert near.vocab_size is None


def test_query_returns_only_the_workspace_records(tmp_path: Path) -> None:
    ws, outside = layout(tmp_path)
    settings = Settings(home=tmp_path / "home")
    for folder in (ws / "run", outside / "run"):
        run_tool(
            "evidence.summarize", {"paths": [str(trainer_state(folder))]}, context(settings, [ws])
        )
    everything = run_tool("audit.query", {}, context(settings, [ws]))
    mine = run_tool("audit.query", {}, context(settings, [ws], confine=True))
    assert everything.total == 2
    assert mine.total == 1
