"""The dossier as markdown: verdict, chain of reasoning, traps, what would change it, inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from companion.mdtext import PATH_LIMIT, code, inline, inline_prose

if TYPE_CHECKING:
    from companion.case.schemas import CaseResult, Side


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (it may quote a file's values)."""
    return inline_prose(text)


def verdict_lines(r: CaseResult) -> list[str]:
    """The answer first: verdict, the claim judged, the rule that decided."""
    lines = [f"**Verdict: {r.verdict}.** {_cell(r.headline)}", ""]
    if r.claim is not None:
        lines += [
            f"**Claim** “{_cell(r.claim)}” (asserts: {r.claim_means}): the evidence "
            f"**{r.claim_verdict}** it.",
            "",
        ]
    lines.append(f"Decided by rule `{r.rule.name}`.")
    if r.record_id:
        lines.append(
            f"Case id `{r.record_id}`; sub-results: {', '.join(r.sub_records()) or 'none'}."
        )
    return lines


def chain_lines(r: CaseResult) -> list[str]:
    """The chain of reasoning as a table, then conflicts and how they were resolved."""
    lines = [
        "## Chain of reasoning",
        "",
        "| evidence | tool | shows | baseline | weight | points to |",
        "|---|---|---|---|---|---|",
    ]
    for e in r.chain:
        tool = e.tool + (f" `{e.record_id}`" if e.record_id else "")
        lines.append(
            f"| {_cell(e.source)} | {tool} | {_cell(e.shows)} | {_cell(e.baseline)} | {e.weight} | "
            f"{e.points} |"
        )
    if not r.chain:
        lines.append("| — | — | no input both sides have | — | — | — |")
    for c in r.conflicts:
        lines += ["", f"**Disagreement.** {_cell(c)}"]
    return lines


def trap_lines(r: CaseResult) -> list[str]:
    """Each named trap and its status."""
    lines = ["## Traps", ""]
    lines += [f"- **{t.name}** ({t.status}): {_cell(t.explanation)}" for t in r.traps]
    return lines


def _side(label: str, s: Side) -> list[str]:
    """What one side had."""
    return [
        f"- **{label}** {code(s.path, PATH_LIMIT)}: weights {len(s.weights)} file(s); config "
        f"{'yes' if s.config else 'no'}; tokenizer {'yes' if s.tokenizer else 'no'}; "
        f"logs {len(s.logs)}"
    ]


def detail_lines(r: CaseResult) -> list[str]:
    """Architecture differences and tokenizer overlap."""
    lines: list[str] = []
    if r.arch_rows:
        lines += ["## Architecture", "", "| field | A | B | meaning |", "|---|---|---|---|"]
        lines += [
            f"| {x.field} | {inline(x.a)} | {inline(x.b)} | {_cell(x.meaning)} |"
            for x in r.arch_rows
        ]
        lines += ["", f"Tensor shapes compatible: {r.shapes_compatible}.", ""]
    t = r.tokenizer
    if t is not None:
        lines += [
            "## Tokenizers",
            "",
            f"{t.relation}: {t.shared:,} shared tokens of {t.size_a:,} (A) and {t.size_b:,} "
            f"(B); Jaccard {t.jaccard:.3f}; same ID {t.same_id_fraction:.1%}; dominant shift "
            f"{t.dominant_shift:+d} ({t.dominant_shift_fraction:.1%}).",
            "",
        ]
    return lines


def manifest_lines(r: CaseResult) -> list[str]:
    """Every input with its hash, and which inputs are reconstructions."""
    lines = ["## Inputs", "", *_side("A", r.a), *_side("B", r.b), ""]
    if r.reconstructed:
        lines += ["Reconstructions (not original files):", ""]
        lines += [f"- {_cell(x)}" for x in r.reconstructed]
        lines.append("")
    lines += ["| file | bytes | sha256 |", "|---|---|---|"]
    lines += [
        f"| {code(f.path, PATH_LIMIT, cell=True)} | {f.size:,} | `{f.sha256}` |"
        for f in r.manifest.inputs
    ]
    lines += ["", f"companion {r.manifest.tool_version}, {r.manifest.created}."]
    return lines


def render_markdown(r: CaseResult) -> str:
    """The whole dossier."""
    lines = [f"# Dossier: {inline(r.case)}", "", *verdict_lines(r), "", *chain_lines(r), ""]
    lines += [*trap_lines(r), "", "## What would change the verdict", ""]
    lines += [f"- {_cell(w)}" for w in r.would_change] or ["- Nothing short of new evidence."]
    lines += ["", *detail_lines(r), *manifest_lines(r)]
    if r.html_path:
        lines += ["", f"HTML dossier: {code(r.html_path, PATH_LIMIT)}."]
    return "\n".join(lines) + "\n"
