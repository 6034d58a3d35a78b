"""Markdown renderings of fingerprint and identify results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from companion.mdtext import inline, inline_path, inline_prose

if TYPE_CHECKING:
    from companion.fingerprint.schemas import FingerprintResult, IdentifyResult


def fingerprints_markdown(result: FingerprintResult) -> str:
    """One row per checkpoint: status, shape, fingerprint size and time."""
    lines = [
        "# Fingerprints",
        "",
        "| checkpoint | status | hidden | layers | size | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for f in result.fingerprints:
        if f.status == "failed":
            lines.append(f"| {inline_path(f.path)} | failed: {inline_prose(f.error)} | | | | |")
            continue
        path = inline_path(f.path)
        lines.append(
            f"| {path} | ok | {f.hidden} | {f.layers} | {f.size_bytes} B | {f.seconds:.2f} |"
        )
    if result.record_id:
        lines += ["", f"Recorded as `{result.record_id}`."]
    return "\n".join(lines) + "\n"


def identify_markdown(result: IdentifyResult) -> str:
    """The decision, the ranked candidates with their evidence, and the null."""
    best = result.parent
    head = (
        f"**Likely parent: {inline_path(best.path)}** (score {best.score:.3f}, p = {best.p:.2g})"
        if best
        else "**No known parent** in the store (no candidate beats the unrelated-pair null)."
    )
    n = result.null
    lines = [
        f"# Parent search for {inline_path(result.path)}",
        "",
        head,
        "",
        "| # | candidate | score | p | related | exact r (shared) | gain dist | audit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(result.candidates, 1):
        r = "—" if c.exact_r is None else f"{c.exact_r:.3f} ({c.shared})"
        gd = "—" if c.gain_distance is None else f"{c.gain_distance:.3f}"
        lines.append(
            f"| {i} | {inline_path(c.path)} | {c.score:.3f} | {c.p:.2g} "
            f"| {'yes' if c.related else 'no'} "
            f"| {r} | {gd} | {c.audit_verdict or '—'} |"
        )
    lines += [
        "",
        f"Null: {n.method}, {n.draws} draws (median {n.median:.3f}, sd {n.sd:.3f}, "
        f"max {n.maximum:.3f}; {n.excluded_related} outlying pairs left out as related), "
        f"over {n.stored} stored fingerprints. `related` needs a score above every null draw "
        "and p × stored models ≤ alpha (Bonferroni). Trap avoided: a bare similarity, which "
        "two models of one recipe share.",
    ]
    if result.stored_as:
        lines.append(f"\nThis exact checkpoint is already stored as {inline(result.stored_as)}.")
    return "\n".join(lines) + "\n"
