"""Demo section: configs written from the catalog, a tokenizer pair, and every arch tool."""

from __future__ import annotations

import json
from pathlib import Path

from companion.architecture.catalog import find
from companion.tools import Show, ToolContext

_MODELS = {"solar-open": "Solar-Open-100B", "glm-air": "GLM-4.5-Air", "qwen3-moe": "Qwen3-30B-A3B"}


def _tokenizer(tokens: list[str], merges: list[str]) -> dict[str, object]:
    """A small tokenizer.json in the Hugging Face tokenizers format."""
    return {
        "version": "1.0",
        "added_tokens": [{"id": len(tokens), "content": "<|end|>", "special": True}],
        "model": {"type": "BPE", "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges},
    }


def build(workspace: Path) -> None:
    """Write config.json files (hyperparameters from the catalog) and two tokenizers."""
    for folder, name in _MODELS.items():
        cfg = {**find(name).config, "architectures": [f"{folder} (demo copy of {name})"]}
        path = workspace / "models" / folder / "config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    letters = "abcdefghijklmnopqrstuvwxyz"
    base = list(letters) + [a + b for a in letters for b in letters]
    merges = [f"{a} {b}" for a in letters for b in letters]
    extra = [f"{a}{b}{c}" for a in "etaoin" for b in letters for c in "srh"]
    tok = workspace / "tokenizers"
    tok.mkdir(parents=True, exist_ok=True)
    (tok / "base.tokenizer.json").write_text(json.dumps(_tokenizer(base, merges)), "utf-8")
    (tok / "extended.tokenizer.json").write_text(
        json.dumps(_tokenizer(base + extra, merges)), "utf-8"
    )


def run(workspace: Path, ctx: ToolContext, show: Show) -> None:
    """Describe, count, diff, rank and compare tokenizers."""
    models = workspace / "models"
    solar, glm = str(models / "solar-open"), str(models / "glm-air")
    show("arch.describe solar-open", ctx.run("arch.describe", {"path": solar}))
    show("arch.params glm-air", ctx.run("arch.params", {"path": glm}))
    show("arch.diff solar-open vs glm-air", ctx.run("arch.diff", {"a": solar, "b": glm}))
    show(
        "arch.nearest qwen3-moe",
        ctx.run("arch.nearest", {"path": str(models / "qwen3-moe"), "k": 3}),
    )
    tok = workspace / "tokenizers"
    args = {"a": str(tok / "base.tokenizer.json"), "b": str(tok / "extended.tokenizer.json")}
    show("tokenizer.compare base vs extended", ctx.run("tokenizer.compare", args))
