"""The hard cases: unknown V, fresh heads, interval means and sparse exports, several runs.

Curves come from the project's tiny trainer (real optimisation, resampled here) except where
the LLM scale matters (ln V ≥ 9), where the curve shape is typed in from published figures.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
from helpers.evidence_runs import VOCAB, finetune_run, scratch_run

from companion.evidence import writers
from companion.evidence.trainer import Model, Run, markov_corpus, train
from companion.toolbox import run_tool
from companion.tools import ToolContext


def summarize(tmp: Path, *paths: Path, **extra: object) -> dict[str, object]:
    """Run the tool as the CLI/LSP would and return its JSON."""
    args = {"paths": [str(p) for p in paths], **extra}
    return run_tool("evidence.summarize", args, ToolContext(roots=[tmp])).model_dump(mode="json")


@functools.cache
def continued_run(steps: int = 300) -> Run:
    """A trained model trained further on its own data: it starts at its floor (~1.7)."""
    corpus = markov_corpus(VOCAB, 40_000, seed=1)
    model = Model.random(VOCAB, seed=1)
    train(model, corpus, steps=300, peak=0.05, warmup=20, seed=3)
    return train(model, corpus, steps=steps, peak=0.01, warmup=10, seed=5)


def kv_log(path: Path, steps: list[float], loss: list[float], extra: str = "") -> Path:
    """A plain `step N | loss X` console log."""
    path.write_text(
        "".join(f"step {s:g} | loss {v:.5f}{extra}\n" for s, v in zip(steps, loss, strict=True))
    )
    return path


def test_unknown_vocab_first_loss_far_below_ln_256_is_warm(tmp_path: Path) -> None:
    run = continued_run()
    assert 1.1 < run.loss[0] < 1.9
    p = tmp_path / "trainer_state.json"
    writers.trainer_state(run, p)
    out = summarize(tmp_path, p)
    assert out["vocab_size"] is None and out["verdict"] == "warm_start"
    assert "ln 256 = 5.545" in out["reasons"][0]["text"]
    assert "2^8–2^20" in out["reasons"][0]["text"]


def test_unknown_vocab_char_level_range_is_not_called(tmp_path: Path) -> None:
    p = kv_log(tmp_path / "train.log", [1, 2, 3], [4.17, 3.9, 3.6])
    out = summarize(tmp_path, p)
    assert out["verdict"] == "inconclusive"
    assert any("character-level" in r["text"] for r in out["reasons"])


@pytest.mark.parametrize(("loss", "lo", "hi"), [(10.0, 18_000, 26_000), (12.0, 139_000, 190_000)])
def test_unknown_vocab_high_first_loss_names_the_vocab_range(
    tmp_path: Path, loss: float, lo: int, hi: int
) -> None:
    steps = list(range(1, 101))
    curve = [3.0 + (loss - 3.0) * math.exp(-(s - 1) / 60) for s in steps]
    out = summarize(tmp_path, kv_log(tmp_path / "train.log", steps, curve))
    assert out["verdict"] == "inconclusive"
    f = next(f for f in out["findings"] if f["name"] == "initial_loss")
    assert lo <= f["figures"]["vocab_lo"] and f["figures"]["vocab_hi"] <= hi
    assert "consistent with random init for vocabularies of" in f["message"]


LLM_V = 50257


def llm_log(path: Path, tau: float, grad: list[float] | None = None) -> Path:
    """An LLM-scale curve from ln V (published GPT-2 shape): floor 3.3, e-folding `tau`."""
    lines = ["total desired batch size: 524288"]
    for s in range(1, 401):
        loss = 3.3 + (math.log(LLM_V) + 0.02 - 3.3) * math.exp(-(s - 1) / tau)
        lr = 6e-4 * min(1.0, s / 100)
        g = f" | grad_norm {grad[s - 1]:.3f}" if grad else ""
        lines.append(f"step {s:4d} | loss {loss:.6f} | lr {lr:.4e}{g}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_from_scratch_at_ln_v_carries_the_fresh_head_caveat(tmp_path: Path) -> None:
    out = summarize(tmp_path, llm_log(tmp_path / "train.log", tau=400), vocab_size=LLM_V)
    assert out["verdict"] == "from_scratch"
    caveat = [r["text"] for r in out["reasons"] if "freshly initialised head" in r["text"]]
    assert caveat and "what would decide it" in caveat[0]


def test_fresh_head_reaches_a_trained_level_on_few_tokens(tmp_path: Path) -> None:
    out = summarize(tmp_path, llm_log(tmp_path / "train.log", tau=15), vocab_size=LLM_V)
    assert out["verdict"] != "from_scratch"
    head = next(f for f in out["findings"] if f["name"] == "fresh_head")
    assert head["direction"] == "warm_start" and "freshly initialised head" in head["message"]


def test_fresh_head_grad_norm_figure(tmp_path: Path) -> None:
    grad = [40.0 * math.exp(-s / 8) + 0.8 for s in range(400)]
    out = summarize(tmp_path, llm_log(tmp_path / "t.log", 400, grad), vocab_size=LLM_V)
    head = next(f for f in out["findings"] if f["name"] == "fresh_head")
    assert head["figures"]["grad_norm_ratio"] > 5 and head["direction"] == "warm_start"


def resampled(run: Run, window: int, sparse: bool) -> tuple[list[float], list[float]]:
    """Window means (a trainer logging the mean of each window) or every window-th point."""
    loss = np.asarray(run.loss)
    n = len(loss) // window
    if sparse:
        return [float(window * k) for k in range(1, n + 1)], [
            float(loss[window * k - 1]) for k in range(1, n + 1)
        ]
    means = loss[: n * window].reshape(n, window).mean(axis=1)
    return [float(window * k) for k in range(1, n + 1)], means.tolist()


CASES = [(w, sp) for w in (5, 10, 25, 50, 100) for sp in (False, True)]


@pytest.mark.parametrize(("window", "sparse"), CASES)
def test_window_means_of_real_scratch_runs_never_exclude_scratch(
    tmp_path: Path, window: int, sparse: bool
) -> None:
    steps, loss = resampled(scratch_run(300), window, sparse)
    p = tmp_path / "trainer_state.json"
    writers.trainer_state(Run([int(s) for s in steps], loss, [1e-3] * len(loss), 256), p)
    out = summarize(tmp_path, p, vocab_size=VOCAB)
    wm = next(f for f in out["findings"] if f["name"] == "window_mean")
    assert wm["direction"] != "warm_start" and out["verdict"] != "warm_start"


@pytest.mark.parametrize("window", [5, 10, 25])
def test_window_means_of_a_real_warm_start_exclude_scratch(tmp_path: Path, window: int) -> None:
    steps, loss = resampled(continued_run(), window, sparse=False)
    p = tmp_path / "trainer_state.json"
    writers.trainer_state(Run([int(s) for s in steps], loss, [1e-3] * len(loss), 256), p)
    out = summarize(tmp_path, p, vocab_size=VOCAB)
    wm = next(f for f in out["findings"] if f["name"] == "window_mean")
    assert wm["direction"] == "warm_start" and out["verdict"] == "warm_start"


@pytest.mark.parametrize("window", [50, 100, 250])
def test_llm_window_mean_excludes_a_trained_head_fine_tune(tmp_path: Path, window: int) -> None:
    steps = np.arange(1, 2001)
    loss = 3.3 + (math.log(LLM_V) - 3.3) * np.exp(-(steps - 1) / 300)
    n = len(loss) // window
    means = loss[: n * window].reshape(n, window).mean(axis=1)
    p = tmp_path / "trainer_state.json"
    run = Run([window * (k + 1) for k in range(n)], means.tolist(), [1e-4] * n, 8)
    writers.trainer_state(run, p)
    out = summarize(tmp_path, p, vocab_size=LLM_V)
    wm = next(f for f in out["findings"] if f["name"] == "window_mean")
    assert wm["direction"] == "from_scratch" and "fresh head" in wm["message"]


def test_several_runs_in_one_file_are_split_and_each_judged(tmp_path: Path) -> None:
    a, b = scratch_run(), finetune_run()
    p = tmp_path / "train.log"
    writers.nanogpt(a, tmp_path / "a.log")
    writers.nanogpt(b, tmp_path / "b.log")
    p.write_text((tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text())
    out = summarize(tmp_path, p, vocab_size=VOCAB)
    runs = out["runs"]
    assert [r["verdict"] for r in runs] == ["from_scratch", "warm_start"]
    assert runs[1]["first_loss"] == pytest.approx(b.loss[0], abs=1e-3)
    assert (
        out["verdict"] == "inconclusive"
        and "runs in this file disagree" in out["reasons"][0]["text"]
    )


def test_a_resume_that_overlaps_is_not_a_new_run(tmp_path: Path) -> None:
    run = scratch_run()
    steps = list(range(1, 41)) + list(range(30, 61))
    loss = run.loss[:40] + run.loss[29:60]
    out = summarize(tmp_path, kv_log(tmp_path / "t.log", steps, loss), vocab_size=VOCAB)
    assert out["runs"] == [] and any(f["name"] == "resumes" for f in out["findings"])
