"""Real loss curves from the project's tiny trainer (cached per test session)."""

from __future__ import annotations

import functools
import math

from companion.evidence.trainer import Model, Run, markov_corpus, train

VOCAB = 256
LN_V = math.log(VOCAB)


@functools.cache
def scratch_run(steps: int = 60) -> Run:
    """A run from random init: first loss ≈ ln 256."""
    corpus = markov_corpus(VOCAB, 40_000, seed=1)
    return train(Model.random(VOCAB, seed=0), corpus, steps=steps, peak=0.05, warmup=10)


@functools.cache
def finetune_run(steps: int = 60) -> Run:
    """A run from a trained init on shifted data: first loss far below ln 256."""
    pre = markov_corpus(VOCAB, 40_000, seed=1)
    shifted = markov_corpus(VOCAB, 40_000, seed=2, shift=0.3)
    model = Model.random(VOCAB, seed=1)
    train(model, pre, steps=200, peak=0.05, warmup=20, seed=3)
    return train(model, shifted, steps=steps, peak=0.03, warmup=10, seed=4)


def write_config(folder: object, vocab: int = VOCAB) -> None:
    """A config.json beside a log, giving V."""
    import json
    from pathlib import Path

    Path(str(folder), "config.json").write_text(json.dumps({"vocab_size": vocab}))
