"""fairseq prints its loss in bits (base 2): `ppl` is 2^loss. companion detects it from the
record itself and converts to nats before any test against ln V."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers.evidence_runs import VOCAB, scratch_run

from companion.evidence.detect import read_log
from companion.evidence.kvlog import loss_in_bits
from companion.toolbox import run_tool
from companion.tools import ToolContext

LN2 = math.log(2)


def fairseq_train(losses: list[float], lrs: list[float] | None = None) -> str:
    """`train_inner` lines in fairseq's exact layout, the loss given in nats printed in bits."""
    out = ["2024-05-01 12:00:00 | INFO | fairseq_cli.train | task: LanguageModelingTask\n"]
    for i, nats in enumerate(losses):
        bits = nats / LN2
        step = i + 1
        lr = lrs[i] if lrs else 0.0005
        out.append(
            f"2024-05-01 12:00:{i % 60:02d} | INFO | train_inner | epoch 001:    {step} / 1234 "
            f"loss={bits:.3f}, nll_loss={bits:.3f}, ppl={2**bits:.2f}, wps=12345, ups=1.2, "
            f"wpb=2048, bsz=8, num_updates={step}, lr={lr:.4g}, gnorm=1.234, train_wall=80, "
            "wall=90\n"
        )
    return "".join(out)


VALID = (
    "2024-05-01 12:10:00 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 9.123 | "
    "nll_loss 9.123 | ppl 557.5 | wps 40000 | wpb 2000 | bsz 8 | num_updates 20\n"
)


def test_bits_are_told_from_nats_by_the_perplexity() -> None:
    assert loss_in_bits(2**15.671, 15.671) is True
    assert loss_in_bits(math.exp(3.2), 3.2) is False  # e^loss: nats (OpenNMT, DeepSpeed-Chat)
    assert loss_in_bits(math.nan, 3.2) is None


def test_fairseq_loss_in_bits_is_converted_to_nats(tmp_path: Path) -> None:
    run = scratch_run()
    path = tmp_path / "train.log"
    path.write_text(fairseq_train(run.loss[:20]) + VALID)
    log = read_log(path)
    assert list(log.series.step[:3]) == [1, 2, 3]
    assert log.series.loss[0] == pytest.approx(run.loss[0], abs=2e-3)
    assert any("bits" in n for n in log.notes)
    assert log.eval_points == [(20.0, pytest.approx(9.123 * LN2))]
    assert len(log.series) == 20  # the valid line is an evaluation, not a training record


def test_fairseq_from_scratch_verdict_uses_nats(tmp_path: Path) -> None:
    run = scratch_run()
    path = tmp_path / "train.log"
    path.write_text(fairseq_train(run.loss[:40], run.lr[:40]))
    args = {"paths": [str(path)], "vocab_size": VOCAB}
    out = run_tool("evidence.summarize", args, ToolContext(roots=[tmp_path])).model_dump(
        mode="json"
    )
    assert out["verdict"] == "from_scratch"
    initial = next(f for f in out["findings"] if f["name"] == "initial_loss")
    assert initial["figures"]["first_loss"] == pytest.approx(run.loss[0], abs=2e-3)


def test_nats_with_perplexity_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text(
        "".join(
            f"Step {s}/1000; ppl: {math.exp(2.5):.3f}; xent: 2.5000; lr: 0.0002\n"
            for s in range(1, 6)
        )
    )
    log = read_log(path)
    assert log.series.loss[0] == pytest.approx(2.5)
    assert not any("bits" in n for n in log.notes)
