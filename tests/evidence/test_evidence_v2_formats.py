"""Shapes the generic grammar reads: free text, markdown tables, karpathy log.txt, golden
values and eval-perplexity-only logs, each written here in its exact published layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers.evidence_runs import LN_V, VOCAB, scratch_run, write_config

from companion.evidence.detect import read_log
from companion.evidence.locate import looks_like_log, scan_document
from companion.toolbox import run_tool
from companion.tools import ToolContext

NOTES = """# Training notes

We trained the model from scratch. Early lines from the console:

step 0, loss: {0:.4f}
step 1, loss: {1:.4f}
Step 2 - loss: {2:.4f}, lr: 3e-4
At step 3 the loss was {3:.4f}.

The hellaswag score was 0.25 at the end.
"""


def summarize(tmp: Path, *paths: Path, **extra: object) -> dict[str, object]:
    """Run the tool as the CLI/LSP would and return its JSON."""
    args = {"paths": [str(p) for p in paths], **extra}
    return run_tool("evidence.summarize", args, ToolContext(roots=[tmp])).model_dump(mode="json")


def test_free_text_notes_are_read_and_lines_reported(tmp_path: Path) -> None:
    p = tmp_path / "NOTES.md"
    p.write_text(NOTES.format(*scratch_run().loss))
    log = read_log(p)
    assert log.format == "text-kv"
    assert list(log.series.step) == [0, 1, 2]
    assert log.series.loss[0] == pytest.approx(scratch_run().loss[0], abs=1e-4)
    assert log.first_line == 5 and log.used_lines == [5, 6, 7]
    # prose ("the loss was", "score was 0.25") is reported as skipped, never guessed at
    assert log.skipped == 2 and log.skipped_lines == [8, 10]
    out = summarize(tmp_path, p, vocab_size=VOCAB)
    assert out["verdict"] == "from_scratch"
    assert out["parse"]["used_line_refs"] == [5, 6, 7]
    assert out["parse"]["skipped_line_refs"] == [8, 10]


def test_lsp_points_at_the_first_loss_line_of_free_text(tmp_path: Path) -> None:
    text = NOTES.format(*scratch_run().loss)
    path = tmp_path / "NOTES.md"
    assert looks_like_log(text, path)
    scan = scan_document(text, path)
    assert scan.first_line == 4 and scan.format == "text-kv"  # 0-based editor line
    assert scan.first_loss == pytest.approx(scratch_run().loss[0], abs=1e-4)


def test_karpathy_log_txt(tmp_path: Path) -> None:
    run = scratch_run()
    lines = [f"0 val {run.loss[0] + 0.003:.4f}", "0 hella 0.2455"]
    for i, loss in enumerate(run.loss):
        lines.append(f"{i} train {loss:.6f}")
        if i and i % 25 == 0:
            lines += [f"{i} val {loss:.4f}", f"{i} hella 0.2500"]
    p = tmp_path / "log.txt"
    p.write_text("\n".join(lines) + "\n")
    log = read_log(p)
    assert log.format == "text-kv" and log.metric == "train"
    assert len(log.series) == len(run.loss) and log.series.step[0] == 0
    assert log.eval_points[0] == (0.0, pytest.approx(run.loss[0] + 0.003, abs=1e-4))
    assert log.skipped == 3  # the hella lines
    write_config(tmp_path)
    out = summarize(tmp_path, p)
    assert out["verdict"] == "from_scratch"
    assert any(f["name"] == "initial_eval" for f in out["findings"])


def test_hf_model_card_results_table(tmp_path: Path) -> None:
    p = tmp_path / "README.md"
    p.write_text(
        "### Training results\n\n"
        "| Training Loss | Epoch | Step | Validation Loss |\n"
        "|:-------------:|:-----:|:----:|:---------------:|\n"
        "| No log        | 1.0   | 10   | 2.8734          |\n"
        "| 2.9121        | 2.0   | 20   | 2.5012          |\n"
        "| 2.4410        | 3.0   | 30   | 2.3998          |\n\n"
        "### Framework versions\n"
    )
    log = read_log(p)
    assert list(log.series.step) == [10, 20, 30]
    assert math.isnan(log.series.loss[0]) and log.series.loss[1] == 2.9121
    assert log.eval_points[0] == (10.0, 2.8734)


def golden(dict_values: bool) -> dict[str, object]:
    """A Megatron functional-test golden-values file (new dict or old list layout)."""
    run = scratch_run()
    steps = list(range(1, 51, 5))
    loss = {str(s): round(run.loss[s - 1], 5) for s in steps}
    mem = {str(s): 1234567168.0 for s in steps}
    as_list = list(loss.values())
    entry = {"start_step": 1, "end_step": 50, "step_interval": 5}
    return {
        "lm loss": {**entry, "values": loss if dict_values else as_list},
        "num-zeros": {**entry, "values": {k: 0.0 for k in loss} if dict_values else [0.0] * 10},
        "mem-allocated-bytes": {**entry, "values": mem if dict_values else list(mem.values())},
    }


@pytest.mark.parametrize("dict_values", [True, False])
def test_megatron_golden_values(tmp_path: Path, dict_values: bool) -> None:
    p = tmp_path / "golden_values_dev_dgx_h100.json"
    p.write_text(json.dumps(golden(dict_values), indent=2))
    log = read_log(p)
    assert log.format == "megatron-golden" and log.metric == "lm loss"
    assert list(log.series.step[:3]) == [1, 6, 11]
    assert log.series.loss[0] == pytest.approx(scratch_run().loss[0], abs=1e-4)
    out = summarize(tmp_path, p, vocab_size=VOCAB)
    assert out["verdict"] == "from_scratch" and out["first_step"] == 1
    if dict_values:
        scan = scan_document(p.read_text(), p)
        assert scan.first_step == 1 and scan.first_line is not None
        assert '"1":' in p.read_text().splitlines()[scan.first_line]


def deepspeed_ppl(path: Path, ppls: list[float], with_loss: bool) -> None:
    """DeepSpeed-Chat step-1 main.py output: an evaluation before training and each epoch."""
    out = ["[2024-01-01 00:00:00,000] [INFO] [real_accelerator.py:191:get_accelerator]"]
    out.append("***** Running training *****")
    for epoch, ppl in enumerate(ppls):
        if epoch:
            out.append(f"Beginning of Epoch {epoch}/{len(ppls) - 1}, Total Micro Batches 920")
        out.append(f"***** Evaluating perplexity, Epoch {epoch}/{len(ppls) - 1} *****")
        out.append(f"ppl: {ppl}, loss: {math.log(ppl)}" if with_loss else f"ppl: {ppl}")
    path.write_text("\n".join(out) + "\n")


@pytest.mark.parametrize("with_loss", [True, False])
def test_deepspeed_chat_perplexity_only(tmp_path: Path, with_loss: bool) -> None:
    p = tmp_path / "training.log"
    deepspeed_ppl(p, [VOCAB * 1.02, 60.1, 21.3, 12.9], with_loss)
    log = read_log(p)
    assert log.window_kind == "eval" and list(log.series.step) == [0, 1, 2, 3]
    assert log.series.loss[0] == pytest.approx(math.log(VOCAB * 1.02))
    assert log.first_line == 4
    write_config(tmp_path)
    out = summarize(tmp_path, p)
    assert out["verdict"] == "from_scratch"
    initial = next(f for f in out["findings"] if f["name"] == "initial_loss")
    assert initial["strength"] != "strong"
    assert any("weaker evidence" in r["text"] for r in out["reasons"])


def test_vocab_from_the_logs_own_hyperparameter_dump(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    run = scratch_run()
    dump = [
        "------------------------ arguments ------------------------",
        "  micro_batch_size ................................ 4",
        f"  padded_vocab_size ............................... {VOCAB}",
        "  seq_length ...................................... 1024",
        "-------------------- end of arguments ---------------------",
    ]
    body = [
        f"step {i + 1} | loss {v:.4f} | lr {lr:.3e}"
        for i, (v, lr) in enumerate(zip(run.loss, run.lr, strict=True))
    ]
    p.write_text("\n".join(dump + body) + "\n")
    out = summarize(tmp_path, p)
    assert out["vocab_size"] == VOCAB and out["ln_vocab"] == pytest.approx(LN_V)
    assert out["vocab_source"] == "the log's own hyperparameters (arguments dump, line 3)"
    assert out["verdict"] == "from_scratch"
