"""Demo section: a from-scratch run and a fine-tune run of the tiny trainer, summarized."""

from __future__ import annotations

import json
from pathlib import Path

from companion.evidence import writers
from companion.evidence.trainer import Model, markov_corpus, train
from companion.tools import Show, ToolContext

VOCAB = 256


def build(workspace: Path) -> None:
    """Train twice (random init vs trained init) and write a Megatron log and a trainer_state."""
    base = workspace / "evidence"
    scratch_dir, finetune_dir = base / "scratch-run", base / "finetune-run"
    for d in (scratch_dir, finetune_dir):
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(
            json.dumps({"model_type": "bigram", "vocab_size": VOCAB}), encoding="utf-8"
        )
    pretrain = markov_corpus(VOCAB, 100_000, seed=1)
    shifted = markov_corpus(VOCAB, 100_000, seed=2, shift=0.3)
    scratch = train(Model.random(VOCAB, seed=0), pretrain, steps=300, peak=0.05, warmup=20)
    # each sample is one (token, next token) pair: one predicted token per sample
    writers.megatron(scratch, scratch_dir / "train.log", interval=5, vocab=VOCAB, seq_length=1)
    model = Model.random(VOCAB, seed=1)
    train(model, pretrain, steps=300, peak=0.05, warmup=20, seed=3)
    finetune = train(model, shifted, steps=150, peak=0.03, warmup=10, seed=4)
    writers.trainer_state(finetune, finetune_dir / "trainer_state.json", logging_steps=5)


def run(workspace: Path, ctx: ToolContext, show: Show) -> None:
    """Summarize both runs, with pictures."""
    base = workspace / "evidence"
    for name, log in (("scratch-run", "train.log"), ("finetune-run", "trainer_state.json")):
        args = {"paths": [str(base / name / log)], "plot": str(base / name / "loss.png")}
        show(f"evidence.summarize: {name}", ctx.run("evidence.summarize", args))
