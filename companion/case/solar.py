"""The Solar case rebuilt from public figures (../shared/fixtures/solar-case.md, with sources).

Only the published statistics are reproduced; every weight and log value is synthetic:
- norm gains (input and post-attention RMSNorm, 4096 wide) with a shared positive offset, so
  the raw cosine of any pair is about 0.99 while the mean-centred Pearson of Solar vs GLM is
  about 0.01 (published: 0.0126 over 46 layers, range -0.023 to 0.043);
- a sibling (INTELLECT-3, SFT+RL on GLM-4.5-Air-Base) whose gains are GLM's plus a small
  update, Pearson about 1.0 (published: 1.00);
- mean |Δ| at layer 20 near the published 0.326 (input LN) and 0.912 (post LN);
- a W&B loss export whose first loss is about 12 against ln 196,608 = 12.19;
- the configs, hyperparameters as published (the architecture catalog).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from companion.architecture.catalog import find
from companion.audit.safetensors import write_safetensors
from companion.case.engine import RECONSTRUCTION_KEY
from companion.evidence import writers
from companion.evidence.trainer import Run, schedule

HIDDEN = 4096
SPREAD = 0.1  # relative spread of the gains around their offset: raw cosine ≈ 1/(1+0.1²)
UNIVERSAL = 0.113  # a channel pattern every model shares weakly: Pearson ≈ 0.113² ≈ 0.0126
SIBLING_UPDATE = 0.004  # SFT+RL moves norm gains very little
SOURCES = "../shared/fixtures/solar-case.md (sionic-ai, hyunwoongko, kyunghyuncho, Upstage)"


@dataclass(frozen=True)
class Profile:
    """A model's norm-gain depth profile: offset at the first and last layer, per norm."""

    layers: int
    input_ln: tuple[float, float]
    post_ln: tuple[float, float]
    seed: int


SOLAR = Profile(layers=48, input_ln=(0.30, 0.55), post_ln=(0.25, 0.45), seed=2601)
GLM = Profile(layers=46, input_ln=(0.60, 0.90), post_ln=(1.10, 1.40), seed=2507)
MODELS = {"solar-open-100b": "Solar-Open-100B", "glm-4.5-air": "GLM-4.5-Air"}


def _offset(ends: tuple[float, float], layer: int, layers: int) -> float:
    """The gain offset at one depth (linear in depth)."""
    return ends[0] + (ends[1] - ends[0]) * layer / max(1, layers - 1)


def gains(p: Profile) -> dict[str, np.ndarray[Any, Any]]:
    """Structured gains: a per-model channel profile shared by layers, plus per-layer detail."""
    rng = np.random.default_rng(p.seed)
    channel = rng.standard_normal(HIDDEN)
    universal = np.random.default_rng(0).standard_normal(HIDDEN)
    out: dict[str, np.ndarray[Any, Any]] = {}
    for layer in range(p.layers):
        for norm, ends in (
            ("input_layernorm", p.input_ln),
            ("post_attention_layernorm", p.post_ln),
        ):
            detail = 0.6 * channel + 0.8 * rng.standard_normal(HIDDEN) + UNIVERSAL * universal
            g = _offset(ends, layer, p.layers) * (1.0 + SPREAD * detail)
            if layer == 0 and norm == "input_layernorm":
                # Layer 0 sits right after the embedding: mean gain ~0.015, atypical (this is
                # why the claim's layer-0 "baseline" of 0.377 was invalid).
                g = 0.015 + 0.037 * rng.standard_normal(HIDDEN)
            out[f"model.layers.{layer}.{norm}.weight"] = g.astype(np.float32)
    return out


def sibling(w: dict[str, np.ndarray[Any, Any]], seed: int = 3) -> dict[str, np.ndarray[Any, Any]]:
    """A fine-tune's gains: the base's, moved slightly (Pearson about 1.0)."""
    rng = np.random.default_rng(seed)
    return {
        k: (v * (1.0 + SIBLING_UPDATE * rng.standard_normal(v.shape))).astype(np.float32)
        for k, v in w.items()
    }


def loss_run(steps: int = 3000, vocab: int = 196_608, seed: int = 5) -> Run:
    """A from-scratch loss curve (synthetic): starts at about ln V, drops by ~2 nats in the
    first 20 steps (unigram statistics), then falls slowly, below 4 nats only after ~1,000."""
    rng = np.random.default_rng(seed)
    start, knee, floor = math.log(vocab) - 0.09, 9.6, 2.3
    run = Run([], [], [], batch=2048)
    for s in range(1, steps + 1):
        early = knee + (start - knee) * math.exp(-(s - 1) / 8.0)
        late = floor + (knee - floor) * (1.0 + s / 150.0) ** -0.75
        loss = min(early, late + (early - knee)) + 0.02 * rng.standard_normal()
        run.steps.append(s)
        run.loss.append(round(loss, 4))
        run.lr.append(schedule(s, steps, 3e-4, 100))
    return run


def _note(folder: Path, notes: dict[str, str]) -> None:
    """Write RECONSTRUCTION.json: which files of this folder are reconstructions, and how."""
    data = {RECONSTRUCTION_KEY: notes, "sources": SOURCES}
    (folder / "RECONSTRUCTION.json").write_text(json.dumps(data, indent=2) + "\n", "utf-8")


def _model(folder: Path, catalog_name: str, w: dict[str, np.ndarray[Any, Any]], what: str) -> None:
    """One model folder: config.json (published hyperparameters) and bf16 norm gains."""
    folder.mkdir(parents=True, exist_ok=True)
    entry = find(catalog_name)
    cfg = {**entry.config, "architectures": [f"{catalog_name} (reconstruction)"]}
    (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", "utf-8")
    import ml_dtypes  # lazy: only this writer needs it, and it costs ~0.5 s to import

    bf16 = {k: v.astype(ml_dtypes.bfloat16) for k, v in w.items()}
    write_safetensors(folder / "model.safetensors", bf16, {"format": "pt"})
    _note(
        folder,
        {
            "config.json": f"hyperparameters of {catalog_name} as published ({entry.source})",
            "model.safetensors": what,
        },
    )


def build(folder: Path) -> dict[str, Path]:
    """Write the three models and Solar's log under `folder`; return their paths."""
    glm = gains(GLM)
    paths = {name: folder / name for name in (*MODELS, "intellect-3")}
    _model(
        paths["solar-open-100b"],
        "Solar-Open-100B",
        gains(SOLAR),
        "synthetic norm gains (48 layers × input/post LN × 4096): raw cosine vs GLM ≈ 0.99, "
        "Pearson ≈ 0.01, as published; not Solar's weights",
    )
    _model(
        paths["glm-4.5-air"],
        "GLM-4.5-Air",
        glm,
        "synthetic norm gains (46 layers × input/post LN × 4096); not GLM's weights",
    )
    _model(
        paths["intellect-3"],
        "GLM-4.5-Air",
        sibling(glm),
        "synthetic: GLM's synthetic gains after a small update (SFT+RL), Pearson ≈ 1.0 as "
        "published for INTELLECT-3 vs GLM-4.5-Air; not INTELLECT-3's weights",
    )
    log = paths["solar-open-100b"] / "train-loss.csv"
    writers.wandb_csv(loss_run(), log, name="solar-open-100b", metric="train/loss")
    notes = json.loads((log.parent / "RECONSTRUCTION.json").read_text("utf-8"))
    notes[RECONSTRUCTION_KEY][log.name] = (
        "synthetic W&B loss export whose first loss (~12.1) matches the published charts "
        "(near 12, ln 196,608 = 12.19); not Upstage's log"
    )
    (log.parent / "RECONSTRUCTION.json").write_text(json.dumps(notes, indent=2) + "\n", "utf-8")
    return paths


def main(argv: list[str] | None = None) -> int:
    """`python -m companion.case.solar FOLDER`: write the reconstructed case files."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0] if args else "examples/solar")
    for name, path in build(folder).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
