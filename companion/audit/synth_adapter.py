"""Write LoRA adapters for synthetic models in PEFT's exact folder layout (no torch needed).

The files are what `PeftModel.save_pretrained` writes for a LoRA on a Llama-style model:
`adapter_config.json` (peft_type LORA, r, lora_alpha, target_modules, ...) and
`adapter_model.safetensors` with `base_model.model.<module>.lora_A.weight` (r x in) and
`...lora_B.weight` (out x r). tests/audit/test_audit_adapter.py loads one with PEFT itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from companion.audit.adapter import PREFIX
from companion.audit.safetensors import write_safetensors

Weights = dict[str, np.ndarray[Any, Any]]
TARGETS = ("q_proj", "v_proj", "up_proj", "down_proj")


def lora_factors(
    w: Weights, seed: int, rank: int, targets: tuple[str, ...], size: float
) -> dict[str, tuple[Any, Any]]:
    """(A, B) per adapted module: A ~ N(0, 1/in), B scaled so |B A| ~ size * std(W)."""
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[Any, Any]] = {}
    for name, t in w.items():
        module = name.removesuffix(".weight")
        if t.ndim != 2 or module.rsplit(".", 1)[-1] not in targets:
            continue
        rows, cols = t.shape
        a = rng.standard_normal((rank, cols)) / np.sqrt(cols)
        b = rng.standard_normal((rows, rank)) * size * float(t.std()) * np.sqrt(cols / rank)
        out[module] = (a.astype(np.float32), b.astype(np.float32))
    return out


def config(rank: int, alpha: float, targets: tuple[str, ...], base: str) -> dict[str, Any]:
    """The adapter_config.json fields PEFT writes for a plain LoRA."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": sorted(targets),
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "inference_mode": True,
        "init_lora_weights": True,
    }


def write_adapter(
    folder: Path,
    w: Weights,
    seed: int = 7,
    rank: int = 4,
    alpha: float = 8.0,
    targets: tuple[str, ...] = TARGETS,
    size: float = 0.3,
    base: str = "synthetic-base",
) -> Path:
    """Write an adapter for the model `w`; return its folder."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors: Weights = {}
    for module, (a, b) in lora_factors(w, seed, rank, targets, size).items():
        tensors[f"{PREFIX}{module}.lora_A.weight"] = a
        tensors[f"{PREFIX}{module}.lora_B.weight"] = b
    write_safetensors(folder / "adapter_model.safetensors", tensors, {"format": "pt"})
    cfg = config(rank, alpha, targets, base)
    (folder / "adapter_config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return folder
