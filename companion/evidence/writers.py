"""Write a run's loss curve in real log layouts (for the demo and the format tests).

Layouts follow each framework's console output (see docs/formats.md). Values that a
framework averages over its logging interval are averaged here too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from companion.evidence.trainer import Run


def _means(run: Run, interval: int) -> list[tuple[int, float, float]]:
    """(step, mean loss over the interval ending at step, lr at step)."""
    out = []
    for end in range(interval, len(run.steps) + 1, interval):
        window = run.loss[end - interval : end]
        out.append((run.steps[end - 1], sum(window) / len(window), run.lr[end - 1]))
    return out


def megatron(
    run: Run,
    path: Path,
    interval: int = 1,
    vocab: int | None = None,
    timestamps: bool = True,
    seq_length: int = 1024,
) -> None:
    """Megatron-LM console log (`iteration N/ M | ... | lm loss: X |`), mean per interval."""
    total = len(run.steps)
    lines = [
        "using world size: 1, data-parallel size: 1, tensor-model-parallel size: 1",
        f"  seq_length ...................................... {seq_length}",
    ]
    if vocab is not None:
        lines.append(f" > padded vocab (size: {vocab}) with 0 dummy tokens (new size: {vocab})")
    for step, loss, lr in _means(run, interval):
        stamp = "[2024-05-01 12:00:00] " if timestamps else ""
        lines.append(
            f" {stamp}iteration {step:8d}/{total:8d} | consumed samples: {step * run.batch:12d} | "
            f"elapsed time per iteration (ms): 812.4 | learning rate: {lr:.6E} | global batch "
            f"size: {run.batch:5d} | lm loss: {loss:.6E} | loss scale: 1.0 | grad norm: 1.234 | "
            "number of skipped iterations:   0 | number of nan iterations:   0 |"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def trainer_state(run: Run, path: Path, logging_steps: int = 1) -> None:
    """HF trainer_state.json: log_history with the mean loss over each logging_steps."""
    total = len(run.steps)
    history = [
        {
            "epoch": round(step / total, 4),
            "grad_norm": 1.0,
            "learning_rate": lr,
            "loss": round(loss, 4),
            "step": step,
        }
        for step, loss, lr in _means(run, logging_steps)
    ]
    state = {
        "best_metric": None,
        "epoch": 1.0,
        "global_step": total,
        "is_hyper_param_search": False,
        "logging_steps": logging_steps,
        "max_steps": total,
        "num_train_epochs": 1,
        "log_history": history,
        "train_batch_size": run.batch,
    }
    path.write_text(json.dumps(state, indent=2), encoding="utf-8")


def wandb_csv(
    run: Run, path: Path, name: str = "run-1", metric: str = "train/loss", every: int = 1
) -> None:
    """W&B panel CSV export: Step, '<run> - <metric>', __MIN and __MAX columns."""
    col = f"{name} - {metric}"
    rows = [f'"Step","{col}","{col}__MIN","{col}__MAX"']
    for i, (step, loss) in enumerate(zip(run.steps, run.loss, strict=True)):
        if i % every == 0:
            rows.append(f"{step},{loss!r},{loss!r},{loss!r}")
        else:
            rows.append(f"{step},,,")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def llamafactory(run: Run, path: Path, interval: int = 1, lr_key: str = "lr") -> None:
    """LLaMA-Factory trainer_log.jsonl."""
    total = len(run.steps)
    lines = [
        json.dumps(
            {
                "current_steps": step,
                "total_steps": total,
                "loss": round(loss, 4),
                lr_key: lr,
                "epoch": round(step / total, 2),
                "percentage": round(100 * step / total, 2),
                "elapsed_time": "0:00:01",
                "remaining_time": "0:00:10",
            }
        )
        for step, loss, lr in _means(run, interval)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _lines(path: Path, lines: Sequence[str]) -> None:
    """Write lines with a trailing newline."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def nemo(run: Run, path: Path, interval: int = 1) -> None:
    """NeMo 2 progress lines."""
    _lines(
        path,
        [
            f"Training epoch 0, iteration {step - 1}/{len(run.steps) - 1} | lr: {lr:.4g} | "
            f"global_batch_size: {run.batch} | global_step: {step - 1} | reduced_train_loss: "
            f"{loss:.4f} | train_step_timing in s: 0.812 | consumed_samples: {step * run.batch}"
            for step, loss, lr in _means(run, interval)
        ],
    )


def torchtitan(run: Run, path: Path) -> None:
    """torchtitan metrics lines with ANSI colour codes."""
    red, green, yellow, reset = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[39m"
    _lines(
        path,
        ["[titan] 2024-06-01 12:00:00,000 - root - INFO - Training starts at step 1."]
        + [
            f"[titan] 2024-06-01 12:00:01,000 - root - INFO - {red}step: {s:2}  {green}loss: "
            f"{loss:7.4f}  {yellow}memory: 12.34GiB(15.6%)  tps: 1,234  mfu: 12.3%{reset}"
            for s, loss in zip(run.steps, run.loss, strict=True)
        ],
    )


def nanogpt(run: Run, path: Path, vocab: int | None = None) -> None:
    """nanoGPT train.py output (0-based iterations)."""
    head = ["tokens per iteration will be: 8,192"]
    if vocab is not None:
        head.append(f"found vocab_size = {vocab} (inside data/meta.pkl)")
    _lines(
        path,
        head
        + [
            f"iter {s - 1}: loss {loss:.4f}, time 812.43ms, mfu -100.00%"
            for s, loss in zip(run.steps, run.loss, strict=True)
        ],
    )


def llmc_stdout(run: Run, path: Path, vocab: int | None = None) -> None:
    """llm.c train_gpt2 stdout."""
    total = len(run.steps)
    head = [f"| padded_vocab_size: {vocab}" if vocab else "| model: gpt2"]
    _lines(
        path,
        head
        + [
            f"step {s:4d}/{total} | train loss {loss:.6f} | norm 1.2345 | lr {lr:.2e} | "
            "812.43 ms | 12.3% bf16 MFU | 123456 tok/s"
            for s, loss, lr in zip(run.steps, run.loss, run.lr, strict=True)
        ],
    )


def llmc_main(run: Run, path: Path, val_every: int = 50) -> None:
    """llm.c main.log: `s:N tel:X` evaluations and `s:N trl:X` training losses (0-based)."""
    out = []
    for s, loss in zip(run.steps, run.loss, strict=True):
        if (s - 1) % val_every == 0:
            out.append(f"s:{s - 1} tel:{loss + 0.02:.4f}")
        out.append(f"s:{s - 1} trl:{loss:.4f}")
    _lines(path, out)


def modded_nanogpt(run: Run, path: Path, script: str, val_every: int = 25) -> None:
    """modded-nanogpt record: the whole training script, then the run's lines."""
    total = len(run.steps)
    out = [script, "=" * 100, "Running Python 3.12", "=" * 100]
    for s, loss in zip(run.steps, run.loss, strict=True):
        if (s - 1) % val_every == 0:
            out.append(
                f"step:{s - 1}/{total} val_loss:{loss:.4f} train_time:{s * 80}ms "
                f"step_avg:{80.0 if s > 1 else math.nan:.2f}ms"
            )
        out.append(f"step:{s}/{total} train_loss:{loss:.4f} train_time:{s * 80}ms step_avg:80.00ms")
    _lines(path, out)


def hf_console(run: Run, path: Path, interval: int = 1) -> None:
    """HF Trainer console: tqdm bars (with \\r) and dict lines of the interval-mean loss."""
    total = len(run.steps)
    parts = []
    for step, loss, lr in _means(run, interval):
        parts.append(
            f"\r {100 * step // total:3d}%|####      | {step}/{total} [00:{step % 60:02d}<00:10,"
            f"  2.00it/s]"
        )
        parts.append(
            f"{{'loss': {loss:.4f}, 'grad_norm': 1.2, 'learning_rate': {lr:.4e}, "
            f"'epoch': {step / total:.2f}}}\n"
        )
    path.write_text("".join(parts), encoding="utf-8")


def deepspeed_chat(run: Run, path: Path, epochs: int = 3) -> None:
    """DeepSpeed-Chat step-1 log: one mean loss per epoch."""
    per = max(1, len(run.loss) // epochs)
    out = []
    for e in range(epochs):
        chunk = run.loss[e * per : (e + 1) * per]
        out.append(f"Beginning of Epoch {e + 1}/{epochs}, Total Micro Batches {per}")
        out.append(f"Epoch {e + 1}/{epochs} with loss {sum(chunk) / len(chunk)}")
    _lines(path, out)
