"""Values from hostile files stay inert text in every Markdown rendering (CLI, hover, reports).

Each test writes a file whose fields carry a heading, a row break, a remote image, HTML and a
link, renders it through the real engine, and reads the Markdown back the way an editor does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import audit_checkpoints as audit_files
from helpers.markdown import HOSTILE, active, headings, rendered, table_rows

import companion.architecture.render as arch_render
from companion.architecture.analysis import analyse
from companion.audit import synth
from companion.toolbox import run_tool
from companion.tools import ToolContext

REPO = Path(__file__).resolve().parents[2]


def config(**extra: Any) -> dict[str, Any]:
    """A small llama config (typed-in hyperparameters)."""
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 1000,
        "hidden_act": "silu",
        **extra,
    }


def hostile_config(tmp_path: Path) -> Path:
    """A config.json whose string fields, list items and unknown keys all carry the payload."""
    cfg = config(model_type=HOSTILE, architectures=[HOSTILE], hidden_act=HOSTILE)
    cfg[HOSTILE] = 1
    cfg["rope_scaling"] = {"type": HOSTILE}
    path = tmp_path / "hostile" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


def assert_inert(md: str) -> None:
    """No image, link or HTML; no heading or table cell quotes the payload's pieces alone."""
    assert active(md) == []
    assert not any(h.startswith("Verdict: independent") for h in headings(md)), headings(md)
    assert "\n# Verdict" not in md and "\n![" not in md
    for row in table_rows(md):
        assert not any(cell.startswith("Verdict: independent") for cell in row), row


def test_arch_describe_of_a_hostile_config_is_inert(tmp_path: Path) -> None:
    md = run_tool("arch.describe", {"path": str(hostile_config(tmp_path))}, ToolContext())
    text = md.to_markdown()  # type: ignore[attr-defined]
    assert_inert(text)
    assert headings(text)[0].startswith(f"Architecture: {rendered(HOSTILE)}, 2 layers")
    rows = {r[0]: r[1:] for r in table_rows(text)}
    assert rows["model_type"] == [rendered(HOSTILE)]  # one whole cell: the row did not break
    assert rows["rope_scaling_type"] == [rendered(HOSTILE)]
    assert all(len(r) == 2 for r in table_rows(text))


def test_arch_diff_and_nearest_of_a_hostile_config_are_inert(tmp_path: Path) -> None:
    normal = tmp_path / "normal" / "config.json"
    normal.parent.mkdir()
    normal.write_text(json.dumps(config()), encoding="utf-8")
    hostile = hostile_config(tmp_path)
    diff = run_tool("arch.diff", {"a": str(normal), "b": str(hostile)}, ToolContext())
    text = diff.to_markdown()  # type: ignore[attr-defined]
    assert_inert(text)
    rows = table_rows(text)
    assert all(len(r) == 4 for r in rows)
    assert any(r[2] == rendered(HOSTILE) for r in rows)
    near = run_tool("arch.nearest", {"path": str(hostile)}, ToolContext())
    assert_inert(near.to_markdown())  # type: ignore[attr-defined]


def test_config_hover_quotes_hostile_values_and_keys_inertly() -> None:
    tick = "`![x](https://evil.example/t.png)`"
    cfg = config(model_type=HOSTILE, rope_scaling={"factor": tick}, **{HOSTILE: 1})
    text = json.dumps(cfg)
    a = analyse(text, None)
    for key in ('"model_type"', json.dumps(HOSTILE), '"factor"'):
        found = a.hover(text.index(key) + 1)
        assert found is not None, key
        assert_inert(found[0])


def test_a_normal_config_renders_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config()), encoding="utf-8")
    result = run_tool("arch.describe", {"path": str(path)}, ToolContext())
    new = result.to_markdown()  # type: ignore[attr-defined]
    assert "| model_type | llama |" in new and "LlamaForCausalLM" in new
    assert f"Source: `{path}`" in new
    # The same rendering with no escaping at all (what it was before) reads the same.
    monkeypatch.setattr(arch_render, "inline", lambda v, limit=0: str(v))
    monkeypatch.setattr(arch_render, "code", lambda v, limit=0: f"`{v}`")
    old = result.to_markdown()  # type: ignore[attr-defined]
    assert table_rows(new) == table_rows(old) and headings(new) == headings(old)
    assert [line for line in new.splitlines() if "architectures" not in line] == [
        line for line in old.splitlines() if "architectures" not in line
    ]


def test_cli_arch_describe_of_a_hostile_config_is_inert(tmp_path: Path) -> None:
    path = hostile_config(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "COMPANION_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run(
        [sys.executable, "-m", "companion", "arch", "describe", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert_inert(out.stdout)
    assert {r[0]: r[1] for r in table_rows(out.stdout)}["model_type"] == rendered(HOSTILE)


def test_audit_report_quotes_hostile_tensor_names_and_paths_inertly(tmp_path: Path) -> None:
    base = synth.base(audit_files.SPEC, seed=0)
    tuned = synth.finetune(base, seed=1)
    name = "model.layers.0.mlp." + HOSTILE
    base[name] = np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32)
    tuned[name] = base[name] + 0.01
    tuned["extra." + HOSTILE] = np.ones((4, 4), np.float32)  # only in B: "not compared"
    a = synth.save(tmp_path / "a` ![i](https://evil.example/p.png) |", base, audit_files.SPEC)
    b = synth.save(tmp_path / "b", tuned, audit_files.SPEC)
    md = audit_files.audit(a, b).to_markdown()
    assert_inert(md)
    tensors = [r for r in table_rows(md) if len(r) == 11]
    assert [rendered(name)] * 2 in [r[:2] for r in tensors]  # whole cells: no row broke
    assert "`model.layers.0.mlp.down_proj.weight`" in md  # ordinary names as before
    assert f"- A: `{a}`" not in md and str(a) in md.replace("``", "")


def test_log_summary_quotes_a_hostile_metric_name_and_path_inertly(tmp_path: Path) -> None:
    run = tmp_path / "run` ![i](t.png) <img src=x> |"  # a path may hold any of these
    run.mkdir()
    key = "train/loss " + HOSTILE
    rows = [json.dumps({"step": i + 1, key: 6.9 - 0.01 * i}) for i in range(50)]
    log = run / "metrics.jsonl"
    log.write_text("\n".join(rows) + "\n", encoding="utf-8")
    args = {"paths": [str(log)], "vocab_size": 1000}
    result = run_tool("evidence.summarize", args, ToolContext())
    md = result.to_markdown()  # type: ignore[attr-defined]
    assert_inert(md)
    cells = {r[0]: r[1] for r in table_rows(md)}
    assert cells["format"] == f"jsonl ({rendered(key)})"
    assert cells["ln V"] == "6.908 (V = 1000; --vocab-size)"
    assert f"- `{log}`" not in md and str(log) in md.replace("``", "")


def test_workspace_scan_lists_a_hostile_file_name_inertly(tmp_path: Path) -> None:
    name = "model |# x ![i](t.png) <img src=x> `k`\n.safetensors"  # a name may hold a newline
    audit_files.raw_file(tmp_path / name, {"w": audit_files.entry("F32", [1], 0, 4)}, b"\0" * 4)
    result = run_tool("workspace.scan", {"paths": [str(tmp_path)]}, ToolContext())
    md = result.to_markdown()  # type: ignore[attr-defined]
    assert_inert(md)
    rows = table_rows(md)
    assert all(len(r) == 3 for r in rows)
    assert any(r[1].endswith(rendered(name)) for r in rows), rows
