"""Markdown rendering of an EvidenceSummary (what the editor action opens)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from companion.mdtext import PATH_LIMIT, code, inline, inline_path, inline_prose

if TYPE_CHECKING:
    from companion.evidence.schemas import EvidenceSummary

_TITLE = {
    "from_scratch": "trained from scratch",
    "warm_start": "warm start (fine-tune, continued or resumed)",
    "inconclusive": "inconclusive",
}


def _num(x: float | None, fmt: str = ".4g") -> str:
    """A number or an em dash."""
    return "—" if x is None else format(x, fmt)


def render_markdown(s: EvidenceSummary) -> str:
    """The summary as markdown: verdict, reasons, figures, findings, picture, manifest."""
    lines = [f"# Training-log evidence: **{_TITLE[s.verdict]}** (`{s.verdict}`)", ""]
    if s.plot_png:
        lines += [f"![loss curve with ln V]({Path(s.plot_png).as_uri()})", ""]
    lines += ["## Reasons", ""]
    lines += [f"{i}. {inline_prose(r.text)}" for i, r in enumerate(s.reasons, 1)] or ["(none)"]
    window = "" if not s.window or s.window == 1 else f" (mean of {s.window} steps)"
    lines += [
        "",
        "## Figures",
        "",
        "| | |",
        "|---|---|",
        f"| format | {inline(s.format)} ({code(s.metric, cell=True)}) |",
        f"| first value | loss {_num(s.first_loss)} at step {_num(s.first_step, 'g')}{window} |",
        f"| first learning rate | {_num(s.first_lr)} |",
        f"| ln V | {_num(s.ln_vocab)} (V = {s.vocab_size or 'unknown'}"
        + (f"; {inline_path(s.vocab_source)}" if s.vocab_source else "")
        + ") |",
        f"| last value | loss {_num(s.last_loss)} at step {_num(s.last_step, 'g')} |",
        f"| minimum loss | {_num(s.min_loss)} |",
        f"| tokens seen | {_num(s.tokens_seen)}"
        + (f" (claimed {s.claimed_tokens:.4g})" if s.claimed_tokens else "")
        + " |",
        f"| values parsed | {s.parse.values} of {s.parse.records} lines/records; "
        f"{s.parse.unparseable} unparseable; {s.parse.nonfinite} NaN/inf |",
        "",
        "## Findings",
        "",
    ]
    for f in s.findings:
        lines.append(f"- **{f.name}** ({f.direction}, {f.strength}): {inline_prose(f.message)}")
    if s.parse.notes:
        lines += ["", "## Parser notes", ""] + [f"- {inline_prose(n)}" for n in s.parse.notes]
    lines += [
        "",
        "## Manifest",
        "",
        f"tool `{s.manifest.tool}` {s.manifest.tool_version}, created {s.manifest.created}",
        "",
    ]
    lines += [
        f"- {code(i.path, PATH_LIMIT)} ({i.size} bytes) sha256 `{i.sha256}`"
        for i in s.manifest.inputs
    ]
    if s.record_id:
        lines += ["", f"Recorded in the store as `{s.record_id}`."]
    return "\n".join(lines) + "\n"
