"""Small models for the remote-checkpoint tests, and a loopback hub set up for companion
(HF_ENDPOINT and the range cache pointed at it, short timeouts, no token)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from companion.audit.safetensors import write_safetensors
from helpers.hub_server import Hub, serve

HIDDEN, FF, VOCAB, LAYERS = 128, 512, 4096, 4


def model(seed: int, base: dict[str, np.ndarray[Any, Any]] | None = None) -> dict[str, Any]:
    """A small llama-shaped state dict; with `base`, a fine-tune of it."""
    rng = np.random.default_rng(seed)
    shapes = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (HIDDEN,),
            p + "post_attention_layernorm.weight": (HIDDEN,),
            p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN),
            p + "self_attn.k_proj.weight": (HIDDEN // 4, HIDDEN),
            p + "self_attn.v_proj.weight": (HIDDEN // 4, HIDDEN),
            p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
            p + "mlp.gate_proj.weight": (FF, HIDDEN),
            p + "mlp.up_proj.weight": (FF, HIDDEN),
            p + "mlp.down_proj.weight": (HIDDEN, FF),
        }
    out = {}
    for name, shape in shapes.items():
        fresh = rng.standard_normal(shape) * (0.1 if "norm" in name else 0.02)
        fresh += 1.0 if "norm" in name else 0.0
        if base is not None:
            fresh = base[name] + 0.002 * rng.standard_normal(shape)
        out[name] = fresh.astype("<f4")
    return out


def st_bytes(tensors: dict[str, Any], tmp: Path) -> bytes:
    """A safetensors file's bytes."""
    path = tmp / f"m{len(list(tmp.iterdir()))}.safetensors"
    write_safetensors(path, tensors)
    return path.read_bytes()


@contextmanager
def hub_env(
    repos: dict[str, dict[str, bytes]], tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Hub]:
    """Serve `repos` on 127.0.0.1 with companion's remote settings pointed at it."""
    with serve(Hub(repos=repos)) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        monkeypatch.setenv("COMPANION_REMOTE_CACHE_DIR", str(tmp / "cache"))
        # generous: a loaded machine must not turn a slow answer into a Timeout (a test of
        # timeouts lowers it itself)
        monkeypatch.setenv("COMPANION_REMOTE_TIMEOUT_S", "30")
        monkeypatch.setenv("COMPANION_REMOTE_RETRIES", "2")
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield h


def family_repos(tmp: Path) -> dict[str, dict[str, bytes]]:
    """org/base, org/tuned (a fine-tune of it) and org/other (independent)."""
    base = model(1)
    (tmp / "w").mkdir(exist_ok=True)
    return {
        "org/base": {"model.safetensors": st_bytes(base, tmp / "w")},
        "org/tuned": {"model.safetensors": st_bytes(model(2, base), tmp / "w")},
        "org/other": {"model.safetensors": st_bytes(model(3), tmp / "w")},
    }
