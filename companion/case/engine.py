"""The investigation: every engine's result on one pair combined into one dossier."""

from __future__ import annotations

import json
from pathlib import Path

from companion.case.chain import Gathered, chain, layer_points
from companion.case.rules import claim_means, conflicts, decide, judge_claim
from companion.case.schemas import ArchRow, CaseInput, CaseResult, Side, TokenizerOverlap
from companion.case.traps import traps, would_change
from companion.manifest import InputFile, Manifest

RECONSTRUCTION_KEY = "companion_reconstruction"  # set in files the project generated


def _arch_rows(g: Gathered) -> list[ArchRow]:
    """The architecture differences as table rows."""
    if g.diff is None:
        return []
    return [
        ArchRow(field=d.field, a=_cell(d.a), b=_cell(d.b), meaning=d.meaning)
        for d in g.diff.differences
    ]


def _cell(value: object) -> str:
    """A config value as a table cell (thousands separated)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "—" if value is None else str(value)


def _overlap(g: Gathered) -> TokenizerOverlap | None:
    """The tokenizer comparison's headline figures."""
    t = g.tokenizer
    if t is None:
        return None
    return TokenizerOverlap(
        relation=t.relation,
        size_a=t.size_a,
        size_b=t.size_b,
        shared=t.shared,
        jaccard=t.jaccard,
        same_id_fraction=t.same_id_fraction,
        dominant_shift=t.dominant_shift,
        dominant_shift_fraction=t.dominant_shift_fraction,
    )


def reconstructed(sides: list[Side]) -> list[str]:
    """Inputs marked as reconstructions by the generator that wrote them (configs, notes)."""
    out = []
    for side in sides:
        folder = Path(side.path) if Path(side.path).is_dir() else Path(side.path).parent
        note = folder / "RECONSTRUCTION.json"
        if note.is_file():
            try:
                data = json.loads(note.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            for name, what in sorted(dict(data.get(RECONSTRUCTION_KEY, {})).items()):
                out.append(f"{folder.name}/{name}: {what}")
    return out


def merge_manifests(args: CaseInput, parts: list[Manifest | None]) -> Manifest:
    """One manifest: every input of every sub-result, once."""
    seen: dict[str, InputFile] = {}
    for m in parts:
        for f in [] if m is None else m.inputs:
            seen.setdefault(f.path, f)
    return Manifest(
        tool="case.investigate",
        parameters=args.model_dump(mode="json"),
        inputs=[seen[k] for k in sorted(seen)],
    )


def headline(verdict: str, rule_because: str) -> str:
    """The one sentence a reader needs first."""
    answer = {
        "derived": "B was derived from A.",
        "independent": "B was not derived from A (trained independently).",
        "inconclusive": "The evidence does not decide whether B was derived from A.",
    }[verdict]
    return f"{answer} {rule_because}"


def investigate(args: CaseInput, a: Side, b: Side, g: Gathered) -> CaseResult:
    """Combine the sub-results into the dossier (no I/O besides reading reconstruction notes)."""
    links = chain(g)
    rule = decide(links)
    means = claim_means(args.claimed) if args.claimed else None
    parts = [
        x.manifest if x is not None else None for x in (g.audit, g.log_a, g.log_b, g.tokenizer)
    ]
    diff_inputs = [Path(p) for p in (a.config, b.config) if p]
    manifest = merge_manifests(args, parts)
    if diff_inputs and g.diff is not None:
        from companion.manifest import build_manifest

        extra = build_manifest("arch.diff", {}, diff_inputs)
        manifest = merge_manifests(args, [manifest, extra])
    return CaseResult(
        case=f"Was {Path(b.path).name} derived from {Path(a.path).name}, or trained from scratch?",
        a=a,
        b=b,
        verdict=rule.verdict,
        claim=args.claimed,
        claim_means=means,
        claim_verdict=None if means is None else judge_claim(means, rule.verdict),
        headline=headline(rule.verdict, rule.because),
        rule=rule,
        chain=links,
        conflicts=conflicts(links),
        traps=traps(g),
        would_change=would_change(g, rule.verdict),
        layers=[] if g.audit is None else layer_points(g.audit),
        arch_rows=_arch_rows(g),
        shapes_compatible=None if g.diff is None else g.diff.shapes_compatible,
        tokenizer=_overlap(g),
        reconstructed=reconstructed([a, b]),
        manifest=manifest,
    )
