"""Every supported format: a test writes the exact real layout, then reads it back."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.evidence_binary import tensorboard_events, wandb_run_dir
from helpers.evidence_runs import LN_V, VOCAB, finetune_run, scratch_run, write_config

from companion.errors import InputError
from companion.evidence import writers
from companion.evidence.detect import read_log
from companion.evidence.trainer import Run
from companion.toolbox import run_tool
from companion.tools import ToolContext

SCRIPT = """import os
import torch
def main():
    print0(f"step:{step}/{train_steps} val_loss:{val_loss:.4f} train_time:{t:.0f}ms")
    print0(f"step:{step+1}/{train_steps} train_loss:{loss.item():.4f}")
"""


def summarize(tmp: Path, *paths: Path, **extra: object) -> dict[str, object]:
    """Run the tool as the CLI/LSP would and return its JSON."""
    args = {"paths": [str(p) for p in paths], **extra}
    return run_tool("evidence.summarize", args, ToolContext(roots=[tmp])).model_dump(mode="json")


TEXT_WRITERS: dict[str, tuple[Callable[[Run, Path], None], str, int]] = {
    # name -> (writer, expected format, expected first step)
    "megatron": (lambda r, p: writers.megatron(r, p, interval=1), "megatron", 1),
    "megatron-plain": (lambda r, p: writers.megatron(r, p, timestamps=False), "megatron", 1),
    "nemo": (writers.nemo, "nemo", 0),
    "torchtitan": (writers.torchtitan, "torchtitan", 1),
    "nanogpt": (writers.nanogpt, "nanogpt", 0),
    "llmc": (writers.llmc_stdout, "llmc", 1),
    "llmc-main": (writers.llmc_main, "llmc-main", 0),
    "modded": (lambda r, p: writers.modded_nanogpt(r, p, SCRIPT), "modded-nanogpt", 1),
    "hf-console": (writers.hf_console, "hf-dict", 1),
}


@pytest.mark.parametrize("name", list(TEXT_WRITERS))
def test_text_families_scratch(tmp_path: Path, name: str) -> None:
    writer, fmt, first_step = TEXT_WRITERS[name]
    run = scratch_run()
    log_path = tmp_path / "train.log"
    writer(run, log_path)
    log = read_log(log_path)
    assert log.format == fmt
    assert len(log.series) == len(run.loss)
    assert log.series.step[0] == first_step
    assert log.series.loss[0] == pytest.approx(run.loss[0], abs=1e-4)
    assert log.first_line is not None and log.unparseable == 0
    write_config(tmp_path)
    out = summarize(tmp_path, log_path)
    assert out["verdict"] == "from_scratch", out["reasons"]
    assert out["format"] == fmt and out["ln_vocab"] == pytest.approx(LN_V)


@pytest.mark.parametrize("name", ["megatron", "torchtitan", "llmc", "hf-console"])
def test_text_families_finetune(tmp_path: Path, name: str) -> None:
    writer, _fmt, _ = TEXT_WRITERS[name]
    log_path = tmp_path / "train.log"
    writer(finetune_run(), log_path)
    write_config(tmp_path)
    out = summarize(tmp_path, log_path)
    assert out["verdict"] == "warm_start", out["reasons"]


def test_megatron_interval_means_and_header(tmp_path: Path) -> None:
    run = scratch_run()
    p = tmp_path / "megatron.log"
    writers.megatron(run, p, interval=10, vocab=VOCAB)
    out = summarize(tmp_path, p)
    assert out["first_step"] == 10 and out["window"] == 10
    assert out["first_loss"] == pytest.approx(sum(run.loss[:10]) / 10, abs=1e-5)
    assert out["vocab_size"] == VOCAB and "Megatron" in str(out["vocab_source"])
    assert out["tokens_seen"] == 60 * run.batch * 1024
    assert out["verdict"] == "from_scratch"


def test_llmc_main_uses_train_and_keeps_eval(tmp_path: Path) -> None:
    p = tmp_path / "main.log"
    writers.llmc_main(scratch_run(), p, val_every=20)
    log = read_log(p)
    assert log.format == "llmc-main" and len(log.eval_points) == 3
    assert log.eval_points[0][0] == 0


def test_modded_nanogpt_script_prefix_is_not_parsed(tmp_path: Path) -> None:
    p = tmp_path / "record.txt"
    writers.modded_nanogpt(scratch_run(), p, SCRIPT)
    log = read_log(p)
    assert log.format == "modded-nanogpt" and log.unparseable == 0
    assert log.eval_points[0] == (0.0, pytest.approx(scratch_run().loss[0], abs=1e-4))
    write_config(tmp_path)
    out = summarize(tmp_path, p)
    assert any(f["name"] == "initial_eval" for f in out["findings"])


def test_deepspeed_chat_epoch_means_are_inconclusive(tmp_path: Path) -> None:
    p = tmp_path / "training.log"
    writers.deepspeed_chat(scratch_run(), p, epochs=3)
    log = read_log(p)
    assert log.format == "deepspeed-chat" and list(log.series.step) == [1, 2, 3]
    write_config(tmp_path)
    out = summarize(tmp_path, p)
    assert out["verdict"] == "inconclusive" and out["window"] is None


def test_hf_console_tqdm_steps(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    writers.hf_console(scratch_run(), p, interval=5)
    log = read_log(p)
    assert list(log.series.step[:3]) == [5, 10, 15]
    assert log.window_kind == "mean"
    assert not math.isnan(log.series.lr[0])


def test_wandb_csv_export(tmp_path: Path) -> None:
    run = scratch_run()
    p = tmp_path / "wandb_export_2024-05-01T12_00_00.csv"
    writers.wandb_csv(run, p, name="solar-100b-pretrain", every=2)
    log = read_log(p)
    assert log.format == "wandb-csv" and log.metric == "train/loss"
    assert len(log.series) == 30  # empty cells skipped
    assert log.series.loss[0] == run.loss[0]
    write_config(tmp_path)
    assert summarize(tmp_path, p)["verdict"] == "from_scratch"


def test_wandb_csv_several_runs_noted(tmp_path: Path) -> None:
    p = tmp_path / "export.csv"
    p.write_text(
        '"Step","a - train/loss","a - train/loss__MIN","b - train/loss"\n'
        "0,5.5,5.5,2.0\n1,5.3,5.3,1.9\n2,,,1.8\n"
    )
    log = read_log(p)
    assert list(log.series.loss) == [5.5, 5.3]
    assert "2 runs" in log.notes[0]


def test_wandb_run_folder_binary_log(tmp_path: Path) -> None:
    run = scratch_run()
    folder = wandb_run_dir(tmp_path, run.steps, run.loss, run.lr, vocab=VOCAB, big_config=True)
    out = summarize(tmp_path, folder)
    assert out["format"] == "wandb-run" and out["verdict"] == "from_scratch"
    assert out["vocab_size"] == VOCAB and "W&B run config" in str(out["vocab_source"])
    assert out["first_loss"] == run.loss[0] and out["first_lr"] == run.lr[0]
    assert out["parse"]["values"] == 60 and out["parse"]["unparseable"] == 0
    direct = read_log(next(folder.glob("*.wandb")))
    assert len(direct.series) == 60


def test_wandb_run_folder_output_log_only(tmp_path: Path) -> None:
    run = finetune_run()
    folder = wandb_run_dir(tmp_path, run.steps, run.loss, run.lr)
    next(folder.glob("*.wandb")).unlink()
    log = read_log(folder)
    assert log.format == "hf-dict" and len(log.series) == 60


def test_wandb_summary_alone_is_a_clear_error(tmp_path: Path) -> None:
    run = scratch_run()
    folder = wandb_run_dir(tmp_path, run.steps, run.loss, run.lr)
    with pytest.raises(InputError, match="only final values"):
        read_log(folder / "files" / "wandb-summary.json")


def test_hf_trainer_state(tmp_path: Path) -> None:
    run = finetune_run()
    ckpt = tmp_path / "checkpoint-60"
    ckpt.mkdir()
    writers.trainer_state(run, ckpt / "trainer_state.json", logging_steps=5)
    write_config(ckpt)
    out = summarize(tmp_path, ckpt)
    assert out["format"] == "hf-trainer-state" and out["window"] == 5
    assert out["first_loss"] == pytest.approx(sum(run.loss[:5]) / 5, abs=1e-4)
    assert out["verdict"] == "warm_start"


@pytest.mark.parametrize("lr_key", ["lr", "learning_rate"])
def test_llamafactory_jsonl(tmp_path: Path, lr_key: str) -> None:
    run = scratch_run()
    p = tmp_path / "trainer_log.jsonl"
    writers.llamafactory(run, p, interval=2, lr_key=lr_key)
    log = read_log(p)
    assert log.format == "llamafactory-jsonl"
    assert log.series.lr[0] == pytest.approx(run.lr[1])
    write_config(tmp_path)
    assert summarize(tmp_path, p)["verdict"] == "from_scratch"


@pytest.mark.parametrize("tensor", [False, True])
def test_tensorboard_events(tmp_path: Path, tensor: bool) -> None:
    run = scratch_run()
    events = tensorboard_events(tmp_path / "tb", run.steps, run.loss, run.lr, tensor=tensor)
    log = read_log(events)
    assert log.format == "tensorboard" and log.metric == "train/loss"
    assert log.series.loss[0] == pytest.approx(run.loss[0], rel=1e-6)
    assert log.series.lr[5] == pytest.approx(run.lr[5], rel=1e-6)
    write_config(tmp_path)
    assert summarize(tmp_path, tmp_path / "tb")["verdict"] == "from_scratch"


def test_tensorboard_keeps_more_than_10k_scalars(tmp_path: Path) -> None:
    n = 12_000
    steps = list(range(1, n + 1))
    loss = [5.5 - 3 * s / n for s in steps]
    events = tensorboard_events(tmp_path / "tb", steps, loss, [1e-3] * n)
    assert len(read_log(events).series) == n


def test_lfs_pointer_has_its_own_error(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    p.write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 123456789\n"
    )
    with pytest.raises(InputError, match=r"Git LFS pointer.*123456789") as err:
        read_log(p)
    assert "git lfs pull" in err.value.text


def test_vocab_from_tokenizer_json_and_flag(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    writers.nanogpt(scratch_run(), p)
    tok = tmp_path / "tokenizer.json"
    vocab = {f"t{i}": i for i in range(250)}
    tok.write_text(json.dumps({"model": {"vocab": vocab}, "added_tokens": [{"id": 255}]}))
    assert summarize(tmp_path, p)["vocab_size"] == 256
    out = summarize(tmp_path, p, vocab_size=50304)
    assert out["vocab_source"] == "--vocab-size" and out["ln_vocab"] == pytest.approx(
        math.log(50304)
    )
    other = tmp_path / "cfg"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"text_config": {"vocab_size": 1000}}))
    assert summarize(tmp_path, p, config=str(other / "config.json"))["vocab_size"] == 1000
    assert summarize(tmp_path, p, other / "config.json")["vocab_size"] == 1000


def test_hf_output_folder_picks_longest_history(tmp_path: Path) -> None:
    run = scratch_run()
    for name, n in (("checkpoint-900", 30), ("checkpoint-1000", 60)):
        (tmp_path / name).mkdir()
        short = Run(run.steps[:n], run.loss[:n], run.lr[:n], run.batch)
        writers.trainer_state(short, tmp_path / name / "trainer_state.json")
    assert len(read_log(tmp_path).series) == 60


def test_nemo1_tqdm_form(tmp_path: Path) -> None:
    p = tmp_path / "nemo_log_globalrank-0.txt"
    p.write_text(
        "Epoch 0:   1%|          | 1/100 [00:01<01:39, reduced_train_loss=11.10, "
        "global_step=0.000, consumed_samples=16.0, lr=1e-07]\r"
        "Epoch 0:   2%|▏         | 2/100 [00:02<01:38, reduced_train_loss=11.00, "
        "global_step=1.000, consumed_samples=32.0, lr=2e-07]\n"
    )
    log = read_log(p)
    assert log.format == "nemo" and list(log.series.step) == [0, 1]
    assert list(log.series.loss) == [11.10, 11.00] and log.series.lr[1] == 2e-07
