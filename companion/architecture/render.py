"""Markdown renderings of the architecture tools' results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from companion.architecture.params import human
from companion.mdtext import PATH_LIMIT, code, inline, inline_path, inline_prose

if TYPE_CHECKING:
    from companion.architecture.schemas import (
        DescribeResult,
        DiffResult,
        NearestResult,
        ParamsResult,
        TokenizerResult,
    )


def describe_markdown(r: DescribeResult) -> str:
    """Render describe for people."""
    s, p = r.spec, r.params
    lines = [f"# Architecture: {inline(s.summary())}", ""]
    if s.source:
        lines.append(f"Source: {code(s.source, PATH_LIMIT)}")
    lines += ["", "| field | value |", "|---|---|"]
    for k, v in s.model_dump(exclude={"notes", "missing", "unknown_fields", "source"}).items():
        if v not in (None, [], {}, 0, False) or k in ("tie_word_embeddings",):
            shown = ", ".join(map(inline, v)) if isinstance(v, list) else inline(v)
            lines.append(f"| {k} | {shown} |")
    lines += [
        "",
        f"**Parameters:** ≈ {human(p.total)} total, {human(p.active)} active "
        f"({human(p.active_excluding_input_embedding)} without the input embedding)"
        + (f"; MTP {human(p.mtp)} separate" if p.mtp else "")
        + ".",
    ]
    if r.nearest:
        n = r.nearest[0]
        lines.append(f"**Nearest known:** {inline(n.name)} (distance {n.distance:.3f}).")
    if s.notes:
        lines += ["", "## Notes", *[f"- {inline_prose(x)}" for x in s.notes]]
    if s.missing:
        lines.append(f"\nMissing: {', '.join(map(inline, s.missing))} (counts are partial).")
    if s.unknown_fields:
        lines.append(f"\nFields not understood: {', '.join(map(inline, s.unknown_fields))}.")
    return "\n".join(lines)


def params_markdown(r: ParamsResult) -> str:
    """Render params for people."""
    b = r.breakdown
    rows = [
        ("total", r.total),
        ("active", r.active),
        ("total excluding input embedding", r.total_excluding_input_embedding),
        ("active excluding input embedding", r.active_excluding_input_embedding),
    ]
    if r.mtp:
        rows += [("MTP layers (separate)", r.mtp), ("total with MTP", r.total_with_mtp)]
    lines = [f"# Parameters: {inline(r.family)} ({inline_path(r.path)})", ""]
    lines += ["| figure | count | |"]
    lines += ["|---|---:|---|"]
    lines += [f"| {k} | {v:,} | ≈ {human(v)} |" for k, v in rows]
    lines += ["", "| component | count |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in b.model_dump().items() if v]
    lines += ["", f"Conventions: {r.conventions}"]
    if r.published:
        lines.append(f"\n{inline_prose(r.published)}")
    lines += [f"\n- {inline_prose(n)}" for n in r.notes]
    return "\n".join(lines)


def diff_markdown(r: DiffResult) -> str:
    """Render diff for people."""
    lines = [f"# Architecture diff: A = {inline_path(r.a)}, B = {inline_path(r.b)}"]
    lines.append("")
    lines.append(f"Distance {r.distance:.3f} (0 = same hyperparameters, 1 = unrelated).")
    if r.shapes_compatible:
        lines.append("Tensor shapes are compatible: weights could be shared one-to-one.")
    else:
        lines.append(
            "Tensor shapes differ ("
            + ", ".join(map(inline, r.shape_blockers))
            + "): B cannot be a "
            "copy of A's weights without reshaping."
        )
    if r.differences:
        lines += ["", "| field | A | B | meaning |", "|---|---|---|---|"]
        for d in r.differences:
            cells = (d.field, inline(d.a), inline(d.b), inline_prose(d.meaning))
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines.append("\nNo differences in the compared fields.")
    return "\n".join(lines)


def nearest_markdown(r: NearestResult) -> str:
    """Render nearest for people."""
    lines = [f"# Nearest known architectures to {inline_path(r.path)}", ""]
    lines += [inline_prose(r.summary), ""]
    lines += ["| model | distance | published | main differences | source |"]
    lines += ["|---|---:|---|---|---|"]
    for n in r.neighbours:
        pub = n.published_total + (f" / {n.published_active} active" if n.published_active else "")
        diffs = (
            "; ".join(inline(d.rstrip(".")) for d in n.differences[:3]) or "same hyperparameters"
        )
        name, source = inline(n.name), inline(n.source)
        lines.append(f"| {name} | {n.distance:.3f} | {inline(pub)} | {diffs} | {source} |")
    return "\n".join(lines)


def tokenizer_markdown(r: TokenizerResult) -> str:
    """Render tokenizer for people."""
    mj = "n/a" if r.merges_jaccard is None else f"{r.merges_jaccard:.4f}"
    return "\n".join(
        [
            f"# Tokenizer comparison: **{inline(r.relation)}**",
            "",
            inline_prose(r.hint),
            "",
            "| | A | B |",
            "|---|---|---|",
            f"| file | {inline_path(r.a)} | {inline_path(r.b)} |",
            f"| kind | {inline(r.kind_a)} | {inline(r.kind_b)} |",
            f"| size (max id + 1) | {r.size_a:,} | {r.size_b:,} |",
            f"| token strings | {r.tokens_a:,} | {r.tokens_b:,} |",
            f"| merges | {r.merges_a:,} | {r.merges_b:,} |",
            "",
            f"- shared token strings: {r.shared:,} (Jaccard {r.jaccard:.4f})",
            f"- same ID among shared: {r.same_id_fraction:.4f}",
            f"- dominant ID shift (B − A): {r.dominant_shift:+d} "
            f"for {r.dominant_shift_fraction:.4f} of shared tokens",
            f"- merges overlap (Jaccard): {mj}",
        ]
    )
