"""The loss-curve picture: loss vs step, the ln V line and the first point annotated."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from companion.errors import InputError
from companion.evidence.schemas import EvidenceSummary
from companion.evidence.series import ParsedLog

MAX_POINTS = 20000


def _decimate(step: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most ~MAX_POINTS points, keeping each bucket's min and max (spikes stay visible)."""
    n = step.size
    if n <= MAX_POINTS:
        return step, loss
    buckets = MAX_POINTS // 2
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = []
    for lo, hi in itertools.pairwise(edges):
        if hi > lo:
            seg = loss[lo:hi]
            keep += sorted({lo + int(np.argmin(seg)), lo + int(np.argmax(seg))})
    idx = np.array(keep)
    return step[idx], loss[idx]


def plot_summary(log: ParsedLog, summary: EvidenceSummary, out: Path) -> tuple[Path, Path]:
    """Write OUT (PNG) and OUT with .svg; returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    s = log.series
    ok = np.isfinite(s.loss) & np.isfinite(s.step)
    step, loss = _decimate(s.step[ok], s.loss[ok])
    fig = Figure(figsize=(8, 4.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(step, loss, lw=1.0, color="#1f77b4", label=f"{log.metric} ({log.format})")
    if summary.ln_vocab is not None:
        ax.axhline(
            summary.ln_vocab,
            color="#d62728",
            ls="--",
            lw=1.0,
            label=f"ln V = {summary.ln_vocab:.2f} (V = {summary.vocab_size:,})",
        )
    if summary.first_loss is not None and summary.first_step is not None:
        ax.plot([summary.first_step], [summary.first_loss], "o", color="#ff7f0e")
        ax.annotate(
            f"first: {summary.first_loss:.3f} at step {summary.first_step:g}",
            (summary.first_step, summary.first_loss),
            textcoords="offset points",
            xytext=(12, -14),
            fontsize=9,
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.set_title(f"verdict: {summary.verdict}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    png = out if out.suffix.lower() == ".png" else out.with_suffix(".png")
    svg = png.with_suffix(".svg")
    try:
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, format="png")
        fig.savefig(svg, format="svg")
    except OSError as exc:
        raise InputError(
            f"Cannot write the plot to {png}: {exc.strerror or exc}.",
            hint="pass a writable --plot path.",
        ) from None
    return png, svg
