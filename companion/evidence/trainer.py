"""A tiny honest trainer: a factorised bigram language model in numpy, trained with Adam.

It produces real loss curves for the demo and tests: from random init the first loss is
ln V (the logits start near zero); from a trained init it starts near the data's entropy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


def markov_corpus(
    vocab: int, tokens: int, seed: int, shift: float = 0.0, base_seed: int = 7
) -> Array:
    """Text from a sparse Zipfian Markov chain; `shift` re-draws that share of its rows."""
    rng = np.random.default_rng(base_seed)
    fanout = 8
    succ = np.stack([rng.permutation(vocab)[:fanout] for _ in range(vocab)])
    alt = np.random.default_rng(seed + 1000)
    moved = alt.random(vocab) < shift
    succ[moved] = (
        np.stack([alt.permutation(vocab)[:fanout] for _ in range(int(moved.sum()))])
        if moved.any()
        else succ[moved]
    )
    p = 1.0 / np.arange(1, fanout + 1) ** 1.5
    cdf = np.cumsum(p / p.sum())
    draw = np.random.default_rng(seed)
    streams = 256
    length = tokens // streams + 1
    out = np.empty((streams, length), dtype=np.int64)
    cur = draw.integers(0, vocab, streams)
    for t in range(length):
        out[:, t] = cur
        k = np.minimum(np.searchsorted(cdf, draw.random(streams)), fanout - 1)
        cur = succ[cur, k]
    return out.reshape(-1)[:tokens]


@dataclass
class Model:
    """A bigram table: logits(x) = W[x]. Zero init gives uniform predictions (loss ln V)."""

    W: Array
    m: Array | None = None
    v: Array | None = None
    t: int = 0

    @classmethod
    def random(cls, vocab: int, seed: int, std: float = 0.02) -> Model:
        """Random init with small weights: near-zero logits, so the first loss is ~ln V."""
        return cls(np.random.default_rng(seed).normal(0, std, (vocab, vocab)))

    def step(self, x: Array, y: Array, lr: float) -> float:
        """One Adam step on a batch of (token, next token); returns the batch loss before it."""
        logits = self.W[x]
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        n = x.shape[0]
        rows = np.arange(n)
        loss = float(-np.log(p[rows, y] + 1e-12).mean())
        p[rows, y] -= 1.0
        grad = np.zeros_like(self.W)
        np.add.at(grad, x, p / n)
        if self.m is None or self.v is None:
            self.m, self.v = np.zeros_like(self.W), np.zeros_like(self.W)
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad * grad
        mhat = self.m / (1 - 0.9**self.t)
        vhat = self.v / (1 - 0.999**self.t)
        self.W -= lr * mhat / (np.sqrt(vhat) + 1e-8)
        return loss


def schedule(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up from 0, then cosine decay to 10% of the peak."""
    if warmup and step <= warmup:
        return peak * step / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


@dataclass
class Run:
    """A logged training run: per-step loss and learning rate (steps are 1-based)."""

    steps: list[int]
    loss: list[float]
    lr: list[float]
    batch: int


def train(
    model: Model,
    corpus: Array,
    steps: int,
    peak: float,
    warmup: int,
    batch: int = 256,
    seed: int = 0,
) -> Run:
    """Train on random (token, next) pairs of a corpus; log every step."""
    rng = np.random.default_rng(seed)
    out = Run([], [], [], batch)
    for s in range(1, steps + 1):
        i = rng.integers(0, corpus.size - 1, batch)
        lr = schedule(s, steps, peak, warmup)
        out.steps.append(s)
        out.loss.append(model.step(corpus[i], corpus[i + 1], lr))
        out.lr.append(lr)
    return out
