"""Analysis and verdict rules on LLM-scale curves (V = 196,608, the seed's vocabulary)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from companion.evidence.schemas import EvidenceSummary
from companion.toolbox import run_tool
from companion.tools import ToolContext

V = 196_608
LN_V = math.log(V)


def curve(start: float, steps: int, floor: float = 2.0, tau: float = 400.0) -> list[float]:
    """An exponential fall from `start` towards `floor` (LLM pretraining-shaped)."""
    return [floor + (start - floor) * math.exp(-(s - 1) / tau) for s in range(1, steps + 1)]


def write_csv(
    path: Path, steps: list[int], losses: list[float], lr: list[float] | None = None
) -> Path:
    """A W&B CSV export with optional learning-rate column."""
    head = '"Step","run - train/loss"' + (',"run - train/learning_rate"' if lr else "")
    rows = [head] + [
        f"{s},{v!r}" + (f",{lr[i]!r}" if lr else "")
        for i, (s, v) in enumerate(zip(steps, losses, strict=True))
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def summarize(path: Path, **extra: object) -> EvidenceSummary:
    """Run the tool."""
    out = run_tool("evidence.summarize", {"paths": [str(path)], **extra}, ToolContext())
    assert isinstance(out, EvidenceSummary)
    return out


def warm_lr(n: int, warmup: int = 100, peak: float = 3e-4) -> list[float]:
    """Linear warm-up from zero."""
    return [peak * min(1.0, s / warmup) for s in range(1, n + 1)]


def test_seed_case_first_loss_near_ln_v(tmp_path: Path) -> None:
    steps = list(range(1, 3001))
    out = summarize(
        write_csv(tmp_path / "a.csv", steps, curve(12.05, 3000), warm_lr(3000)), vocab_size=V
    )
    assert out.verdict == "from_scratch"
    assert out.ln_vocab == pytest.approx(12.189, abs=1e-3)
    assert out.reasons[0].figures["first_loss"] == pytest.approx(12.05)
    assert "12.189" in out.reasons[0].text and "near zero" in out.reasons[0].text


def test_tied_embeddings_start_above_ln_v(tmp_path: Path) -> None:
    steps = list(range(1, 501))
    out = summarize(write_csv(tmp_path / "a.csv", steps, curve(18.5, 500)), vocab_size=V)
    assert out.verdict == "from_scratch" and "above ln V" in out.reasons[0].text


def test_finetune_starts_low(tmp_path: Path) -> None:
    steps = list(range(1, 501))
    out = summarize(write_csv(tmp_path / "a.csv", steps, curve(2.1, 500, floor=1.6)), vocab_size=V)
    assert out.verdict == "warm_start"
    init = next(f for f in out.findings if f.name == "initial_loss")
    assert init.strength == "strong" and init.figures["gap"] == pytest.approx(LN_V - 2.1, abs=1e-3)


def test_no_vocab_is_inconclusive_but_hints(tmp_path: Path) -> None:
    steps = list(range(1, 501))
    out = summarize(write_csv(tmp_path / "a.csv", steps, curve(12.05, 500)))
    assert out.verdict == "inconclusive" and out.ln_vocab is None
    assert "--vocab-size" in out.reasons[0].text
    assert any("consistent with random init for vocabularies of" in r.text for r in out.reasons)


def test_vocab_swap_disagreement_is_inconclusive(tmp_path: Path) -> None:
    """Starts at ln V (new embeddings) but is below 4 nats by step 60: a trained body."""
    steps = list(range(1, 1001))
    losses = curve(12.1, 1000, floor=1.8, tau=25)
    out = summarize(write_csv(tmp_path / "a.csv", steps, losses), vocab_size=V)
    assert out.verdict == "inconclusive"
    assert "disagree" in out.reasons[0].text
    names = {f.name: f for f in out.findings}
    assert (
        names["below_4"].direction == "warm_start"
        and names["initial_loss"].direction == "from_scratch"
    )


def test_resumed_log_starts_late_and_without_warmup(tmp_path: Path) -> None:
    steps = list(range(5001, 6001))
    out = summarize(
        write_csv(tmp_path / "a.csv", steps, curve(3.0, 1000), [3e-4] * 1000), vocab_size=V
    )
    assert out.verdict == "inconclusive" or out.verdict == "warm_start"
    assert any("too late" in f.message for f in out.findings)


def test_no_warmup_from_step_one_points_to_continued_run(tmp_path: Path) -> None:
    steps = list(range(1, 301))
    out = summarize(
        write_csv(tmp_path / "a.csv", steps, curve(3.2, 300), [2e-5] * 300), vocab_size=V
    )
    assert out.verdict == "warm_start"
    assert any(f.name == "warmup" and f.direction == "warm_start" for f in out.findings)


def test_averaging_window_of_hf_logging_steps(tmp_path: Path) -> None:
    """A logging_steps=10 mean of a fast from-scratch fall sits below ln V; not a warm start."""
    import json

    raw = curve(12.15, 200, floor=6.0, tau=8)
    hist = [
        {"step": s, "loss": float(np.mean(raw[s - 10 : s])), "learning_rate": 1e-4}
        for s in range(10, 201, 10)
    ]
    p = tmp_path / "trainer_state.json"
    p.write_text(json.dumps({"log_history": hist, "logging_steps": 10}))
    out = summarize(p, vocab_size=V)
    init = next(f for f in out.findings if f.name == "initial_loss")
    assert out.window == 10 and "mean of steps 1–10" in init.message
    assert init.direction != "warm_start"


def test_resets_spikes_and_tokens(tmp_path: Path) -> None:
    steps = list(range(1, 401)) + list(range(300, 501))
    losses = curve(12.0, 400) + curve(12.0, 500)[299:]
    losses[150] += 3.0  # a spike
    p = tmp_path / "log.jsonl"
    import json

    p.write_text(
        "".join(
            json.dumps({"step": s, "loss": v, "num_input_tokens_seen": s * 4096}) + "\n"
            for s, v in zip(steps, losses, strict=True)
        )
    )
    out = summarize(p, vocab_size=V, claimed_tokens="4M")
    names = {f.name: f for f in out.findings}
    assert names["resumes"].figures["resets"] == 1 and "400 → 300" in names["resumes"].message
    assert names["spikes"].figures["count"] == 1 and "step 151" in names["spikes"].message
    assert names["tokens"].figures["ratio"] == pytest.approx(500 * 4096 / 4e6)
    assert out.claimed_tokens == 4e6


def test_manifest_parameters_are_the_input_args(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "a.csv", [1, 2, 3], [12.1, 11.5, 11.0])
    out = summarize(p, vocab_size=V, claimed_tokens=1e12)
    assert out.manifest.parameters == {
        "paths": [str(p)],
        "vocab_size": V,
        "config": None,
        "vocab_search": 2,
        "plot": None,
        "overwrite": False,
        "claimed_tokens": 1e12,
    }
    assert out.manifest.inputs[0].sha256 == __import__("hashlib").sha256(p.read_bytes()).hexdigest()
    again = run_tool("evidence.summarize", out.manifest.parameters, ToolContext())
    assert again.model_dump(exclude={"manifest"}) == out.model_dump(exclude={"manifest"})


def test_markdown_and_plot(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "a.csv", list(range(1, 101)), curve(12.1, 100))
    out = summarize(p, vocab_size=V, plot=str(tmp_path / "out" / "curve.png"))
    png, svg = Path(str(out.plot_png)), Path(str(out.plot_svg))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:500]
    md = out.to_markdown()
    assert f"]({png.as_uri()})" in md and "from_scratch" in md and "12.19" in md
    assert "ln V = 12.19" in svg.read_text()
