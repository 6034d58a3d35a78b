"""Shared pieces of the editor end-to-end tests (tests/editors/): workspace, env, process runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EDITORS = REPO / "editors"
CLIENTS = REPO / "tests" / "editors" / "clients"
SERVER_CMD = [sys.executable, "-m", "companion", "serve"]

# A small but real Llama-style config (hyperparameters of Llama-3.1-8B, typed in as facts).
LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def _checkpoints(root: Path) -> None:
    """Two tiny Llama-style checkpoints: B is A plus 0.1% noise (derived)."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    a: dict[str, np.ndarray] = {}
    for i in range(2):
        layer = f"model.layers.{i}."
        a[layer + "input_layernorm.weight"] = 1 + 0.05 * rng.standard_normal(64)
        a[layer + "self_attn.q_proj.weight"] = 0.02 * rng.standard_normal((64, 64))
        a[layer + "mlp.up_proj.weight"] = 0.02 * rng.standard_normal((128, 64))
    b = {k: v + 0.001 * rng.standard_normal(v.shape) for k, v in a.items()}
    save_file({k: v.astype(np.float32) for k, v in a.items()}, str(root / "a.safetensors"))
    save_file({k: v.astype(np.float32) for k, v in b.items()}, str(root / "b.safetensors"))


def make_workspace(root: Path) -> Path:
    """A workspace with a model config, an llm.c-style training log and two checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(LLAMA_CONFIG, indent=2) + "\n")
    # First loss 11.85 ≈ ln(128256) = 11.76: a from-scratch start for this vocabulary.
    (root / "train.log").write_text(
        "".join(f"step {i}/100 | loss {11.9 - 0.05 * i:.4f}\n" for i in range(1, 40))
    )
    (root / "notes.chat.md").write_text("## You\n\nWhich checkpoint came first?\n")
    _checkpoints(root)
    return root


def editor_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for an editor process: isolated HOME/XDG dirs and the real server command."""
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "COMPANION_CMD": json.dumps(SERVER_CMD),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "HOME": str(home),
        "PYTHONPATH": str(REPO),
    }
    env.update(extra)
    return env


def run_until(
    argv: list[str], env: dict[str, str], until: Callable[[], bool], limit: float = 90.0
) -> tuple[subprocess.Popen[str], bool]:
    """Start a process and poll `until` (bounded); returns the process and whether it was alive
    when `until` became true."""
    proc = subprocess.Popen(
        ["timeout", str(int(limit)), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if until():
            return proc, proc.poll() is None
        time.sleep(0.05)
    return proc, False


def finish(proc: subprocess.Popen[str], out: Path, timeout: float = 60.0) -> dict[str, object]:
    """Wait for the editor to exit; return the JSON it wrote (with its log on failure)."""
    log, _ = proc.communicate(timeout=timeout)
    assert out.exists(), f"editor wrote no result (exit {proc.returncode}):\n{log}"
    result = json.loads(out.read_text())
    assert result.get("ok"), f"{result.get('error')}\n{result.get('chat_text', '')}\n{log}"
    assert proc.returncode == 0, log
    result["log"] = log
    return result  # type: ignore[no-any-return]
