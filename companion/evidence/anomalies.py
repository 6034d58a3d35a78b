"""Findings about run history: resumes, spikes, NaNs/skips and tokens versus a claimed budget."""

from __future__ import annotations

import numpy as np

from companion.evidence.schemas import Finding
from companion.evidence.series import ParsedLog

SPIKE_NATS = 0.5
SPIKE_MADS = 8.0
GAP_FACTOR = 3.0


def resumes(log: ParsedLog) -> Finding | None:
    """Step resets and step gaps with loss jumps: signs of a resumed or stitched run."""
    s = log.series
    ok = np.isfinite(s.loss) & np.isfinite(s.step)
    step, loss = s.step[ok], s.loss[ok]
    if step.size < 3:
        return None
    d = np.diff(step)
    resets = np.flatnonzero(d <= 0)
    pos = d[d > 0]
    gaps = np.empty(0, dtype=np.int64)
    if pos.size:
        typical = float(np.median(pos))
        dl = np.abs(np.diff(loss))
        jump = max(0.3, 5 * float(np.median(dl)))
        gaps = np.flatnonzero((d > GAP_FACTOR * typical) & (d > typical + 1) & (dl > jump))
    if resets.size == 0 and gaps.size == 0:
        return None
    parts = []
    if resets.size:
        i = int(resets[0])
        parts.append(
            f"{resets.size} step reset(s) (first: step {step[i]:g} → {step[i + 1]:g}, "
            f"loss {loss[i]:.3f} → {loss[i + 1]:.3f})"
        )
    if gaps.size:
        i = int(gaps[0])
        parts.append(
            f"{gaps.size} gap(s) with a loss jump (first: steps {step[i]:g} → "
            f"{step[i + 1]:g}, loss {loss[i]:.3f} → {loss[i + 1]:.3f})"
        )
    return Finding(
        name="resumes",
        direction="neutral",
        strength="info",
        message="Resume discontinuities: " + "; ".join(parts) + ".",
        figures={"resets": int(resets.size), "gaps": int(gaps.size)},
    )


def spikes(log: ParsedLog) -> Finding | None:
    """Loss spikes: one-point jumps far above the local trend that come back down."""
    loss = log.series.loss
    loss = loss[np.isfinite(loss)]
    if loss.size < 10:
        return None
    d = np.diff(loss)
    mad = float(np.median(np.abs(d - np.median(d)))) or 1e-9
    up = d[:-1]
    back = d[1:]
    hit = np.flatnonzero((up > max(SPIKE_NATS, SPIKE_MADS * mad)) & (back < -0.5 * up))
    if hit.size == 0:
        return None
    steps = log.series.step[np.isfinite(log.series.loss)]
    top = hit[np.argsort(-up[hit])][:3]
    where = ", ".join(f"step {steps[i + 1]:g} (+{up[i]:.2f})" for i in top)
    return Finding(
        name="spikes",
        direction="neutral",
        strength="info",
        message=f"{hit.size} loss spike(s); largest at {where}.",
        figures={"count": int(hit.size), "largest": round(float(up[top[0]]), 4)},
    )


def nonfinite(log: ParsedLog) -> Finding | None:
    """NaN/inf losses and the skipped/NaN iteration counters some frameworks print."""
    s = log.series
    bad = np.flatnonzero(~np.isfinite(s.loss))
    if bad.size == 0 and not log.skipped_iterations and not log.nan_iterations:
        return None
    parts = []
    if bad.size:
        parts.append(f"{bad.size} NaN/inf loss value(s) (first at step {s.step[bad[0]]:g})")
    if log.skipped_iterations:
        parts.append(f"{log.skipped_iterations} skipped iteration(s)")
    if log.nan_iterations:
        parts.append(f"{log.nan_iterations} NaN iteration(s)")
    return Finding(
        name="nonfinite",
        direction="neutral",
        strength="info",
        message="; ".join(parts) + ".",
        figures={
            "nonfinite": int(bad.size),
            "skipped": log.skipped_iterations,
            "nan_iterations": log.nan_iterations,
        },
    )


def tokens_seen(log: ParsedLog) -> tuple[float | None, str]:
    """Tokens the log says were consumed, and how that was worked out."""
    s = log.series
    tok = s.tokens[np.isfinite(s.tokens)]
    if tok.size:
        return float(tok.max()), "token counter in the log"
    samples = s.samples[np.isfinite(s.samples)]
    if samples.size and log.seq_length:
        return float(samples.max()) * log.seq_length, (
            f"consumed samples × seq_length {log.seq_length}"
        )
    steps = s.step[np.isfinite(s.step)]
    if steps.size and log.tokens_per_step:
        return float(steps.max()) * log.tokens_per_step, (
            f"steps × {log.tokens_per_step} tokens per step"
        )
    return None, ""


def budget(log: ParsedLog, claimed: float | None) -> Finding | None:
    """Tokens seen versus a claimed training budget."""
    seen, how = tokens_seen(log)
    if claimed is None:
        if seen is None:
            return None
        return Finding(
            name="tokens",
            direction="neutral",
            strength="info",
            message=f"{seen:.4g} tokens seen ({how}).",
            figures={"tokens_seen": seen},
        )
    if seen is None:
        return Finding(
            name="tokens",
            direction="neutral",
            strength="info",
            message=f"Claimed {claimed:.4g} tokens, but the log carries no token or "
            "sample counter to compare.",
            figures={"claimed_tokens": claimed},
        )
    ratio = seen / claimed if claimed else float("inf")
    figs = {"tokens_seen": seen, "claimed_tokens": claimed, "ratio": round(ratio, 4)}
    if ratio < 0.9:
        text = (
            f"covers only {ratio:.1%} of the claimed {claimed:.4g} (partial log or less training)"
        )
    elif ratio > 1.1:
        text = f"exceeds the claimed {claimed:.4g} by {ratio - 1:.1%}"
    else:
        text = f"matches the claimed {claimed:.4g} ({ratio:.1%})"
    return Finding(
        name="tokens",
        direction="neutral",
        strength="info",
        message=f"{seen:.4g} tokens seen ({how}) {text}.",
        figures=figs,
    )
