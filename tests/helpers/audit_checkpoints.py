"""Checkpoint generators for the audit tests: a family of real safetensors files + hostile ones."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from companion.audit import synth
from companion.audit.schemas import AuditResult, Derivation
from companion.toolbox import run_tool
from companion.tools import ToolContext

SPEC = synth.Spec()


def family(root: Path) -> dict[str, Path]:
    """Base plus every derivative the issue lists, and independent models (cosine trap)."""
    w = synth.base(SPEC, seed=0)
    pruned, pruned_spec = synth.depth_pruned(w, SPEC, drop=(1,))
    graft = synth.base(SPEC, seed=200)
    graft["model.embed_tokens.weight"] = w["model.embed_tokens.weight"]
    return {
        "base": synth.save(root / "base", w, SPEC),
        "finetune": synth.save(root / "finetune", synth.finetune(w, seed=1), SPEC),
        "permuted": synth.save(root / "permuted", synth.permuted(w, SPEC, seed=2), SPEC),
        "pruned": synth.save(root / "pruned", pruned, pruned_spec),
        "bf16": synth.save(root / "bf16", synth.cast(w), SPEC),
        "rescaled": synth.save(root / "rescaled", synth.rescaled(w, SPEC, seed=3), SPEC),
        "independent": synth.save(root / "independent", synth.base(SPEC, seed=100), SPEC),
        "independent2": synth.save(root / "independent2", synth.base(SPEC, seed=101), SPEC),
        "sharded": synth.save(root / "sharded", synth.finetune(w, seed=1), SPEC, shards=3),
        "graft": synth.save(root / "graft", graft, SPEC),
        "hidden_permuted": synth.save(
            root / "hidden_permuted",
            synth.hidden_permuted(synth.finetune(w, seed=1, update=0.1, noise=0.1), seed=5),
            SPEC,
        ),
        "hidden_permuted_all": synth.save(
            root / "hidden_permuted_all",
            synth.hidden_permuted(synth.permuted(synth.finetune(w, seed=1), SPEC), seed=7),
            SPEC,
        ),
        "lora": synth.save(root / "lora", synth.lora_merged(w, seed=6), SPEC),
    }


def raw_file(path: Path, header: Any, data: bytes = b"", length: int | None = None) -> Path:
    """Write a file with a given header (dict -> JSON, or raw bytes) and data section."""
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(blob) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + blob + data)
    return path


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    """One header entry."""
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def pair_with(
    root: Path, name: str, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]
) -> tuple[Path, Path]:
    """Two single-tensor checkpoints holding `a` and `b` under the same name."""
    from companion.audit.safetensors import write_safetensors

    (root / "pa").mkdir(exist_ok=True)
    (root / "pb").mkdir(exist_ok=True)
    write_safetensors(root / "pa" / "model.safetensors", {name: a})
    write_safetensors(root / "pb" / "model.safetensors", {name: b})
    return root / "pa", root / "pb"


def audit(a: Path, b: Path, **kw: Any) -> AuditResult:
    """Run the registered audit tool; the JSON every front door sees must be well formed."""
    result = run_tool("audit.compare", {"a": str(a), "b": str(b), **kw}, ToolContext())
    assert isinstance(result, AuditResult)
    json.loads(result.model_dump_json())
    return result


def kind(r: AuditResult, name: str) -> Derivation:
    """The named derivation (fails with the kinds found)."""
    found = [d for d in r.derivation if d.kind == name]
    assert found, ([d.kind for d in r.derivation], [x.statement for x in r.reasons[:4]])
    return found[0]
