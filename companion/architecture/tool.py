"""Tools: arch.describe, arch.params, arch.diff, arch.nearest and tokenizer.compare."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from companion.architecture.catalog import find
from companion.architecture.diff import ArchDiff, diff_specs
from companion.architecture.nearest import Neighbour, nearest
from companion.architecture.params import ParamCount, count_params, human
from companion.architecture.spec import ArchSpec, resolve_config_path, spec_from_path
from companion.architecture.tokenizer import TokenizerComparison, compare_vocabs, load_vocab
from companion.manifest import Manifest, build_manifest
from companion.tools import ToolContext, tool

CONVENTIONS = (
    "total: every weight of the main model (embedding, output head once if tied, all experts, "
    "routers, norms, biases), MTP layers excluded and reported separately; active: what one "
    "token touches (attention, norms, router, top-k routed + shared experts, embedding, head). "
    "'excluding_input_embedding' drops the token-embedding table."
)


class ArchInput(BaseModel):
    """A model config to read."""

    path: str = Field(
        description="config.json, a folder holding one, or catalog:<name> for a known model."
    )


class DiffInput(BaseModel):
    """Two model configs to compare."""

    a: str = Field(description="First config.json (or folder, or catalog:<name>).")
    b: str = Field(description="Second config.json (or folder, or catalog:<name>).")


class NearestInput(BaseModel):
    """A model config and how many neighbours to list."""

    path: str = Field(description="config.json or a folder holding one.")
    k: int = Field(default=5, ge=1, le=50, description="How many known architectures to list.")


class TokenizerInput(BaseModel):
    """Two tokenizers to compare."""

    a: str = Field(description="First tokenizer.json or vocab.txt (or a folder holding one).")
    b: str = Field(description="Second tokenizer.json or vocab.txt (or a folder holding one).")


def _load(ref: str, ctx: ToolContext) -> tuple[ArchSpec, Path | None]:
    """A spec from a path or a catalog reference, with the config file used."""
    if ref.startswith("catalog:"):
        return find(ref).spec(), None
    path = resolve_config_path(ctx.path(ref))
    return spec_from_path(path), path


def _published_line(spec: ArchSpec, p: ParamCount) -> str | None:
    """If the spec matches a catalog entry exactly, compare with its published figures."""
    top = nearest(spec, 1)[0]
    if top.distance != 0:
        return None
    entry = find(top.name)
    act = f", active {entry.published_active.text}" if entry.published_active else ""
    return (
        f"Same hyperparameters as {entry.name}: published {entry.published_total.text}{act} "
        f"(convention: {entry.active_convention}; source: {entry.source})."
    )


class DescribeResult(BaseModel):
    """The normalised spec, its parameter count and its nearest known architectures."""

    spec: ArchSpec
    params: ParamCount
    nearest: list[Neighbour]
    manifest: Manifest
    record_id: str | None = None

    def to_markdown(self) -> str:
        """Render for people."""
        s, p = self.spec, self.params
        lines = [f"# Architecture: {s.summary()}", ""]
        if s.source:
            lines.append(f"Source: `{s.source}`")
        lines += ["", "| field | value |", "|---|---|"]
        for k, v in s.model_dump(exclude={"notes", "missing", "unknown_fields", "source"}).items():
            if v not in (None, [], {}, 0, False) or k in ("tie_word_embeddings",):
                lines.append(f"| {k} | {v} |")
        lines += [
            "",
            f"**Parameters:** ≈ {human(p.total)} total, {human(p.active)} active "
            f"({human(p.active_excluding_input_embedding)} without the input embedding)"
            + (f"; MTP {human(p.mtp)} separate" if p.mtp else "")
            + ".",
        ]
        if self.nearest:
            n = self.nearest[0]
            lines.append(f"**Nearest known:** {n.name} (distance {n.distance:.3f}).")
        if s.notes:
            lines += ["", "## Notes", *[f"- {x}" for x in s.notes]]
        if s.missing:
            lines.append(f"\nMissing: {', '.join(s.missing)} (counts are partial).")
        if s.unknown_fields:
            lines.append(f"\nFields not understood: {', '.join(s.unknown_fields)}.")
        return "\n".join(lines)


class ParamsResult(ParamCount):
    """A parameter count with its conventions and, for a known model, the published figures."""

    path: str
    conventions: str = CONVENTIONS
    published: str | None = None

    def to_markdown(self) -> str:
        """Render for people."""
        b = self.breakdown
        rows = [
            ("total", self.total),
            ("active", self.active),
            ("total excluding input embedding", self.total_excluding_input_embedding),
            ("active excluding input embedding", self.active_excluding_input_embedding),
        ]
        if self.mtp:
            rows += [("MTP layers (separate)", self.mtp), ("total with MTP", self.total_with_mtp)]
        lines = [f"# Parameters: {self.family} ({self.path})", "", "| figure | count | |"]
        lines += ["|---|---:|---|"]
        lines += [f"| {k} | {v:,} | ≈ {human(v)} |" for k, v in rows]
        lines += ["", "| component | count |", "|---|---:|"]
        lines += [f"| {k} | {v:,} |" for k, v in b.model_dump().items() if v]
        lines += ["", f"Conventions: {self.conventions}"]
        if self.published:
            lines.append(f"\n{self.published}")
        lines += [f"\n- {n}" for n in self.notes]
        return "\n".join(lines)


class DiffResult(ArchDiff):
    """A semantic diff of two configs."""

    def to_markdown(self) -> str:
        """Render for people."""
        lines = [f"# Architecture diff: A = {self.a}, B = {self.b}", ""]
        lines.append(f"Distance {self.distance:.3f} (0 = same hyperparameters, 1 = unrelated).")
        if self.shapes_compatible:
            lines.append("Tensor shapes are compatible: weights could be shared one-to-one.")
        else:
            lines.append(
                "Tensor shapes differ (" + ", ".join(self.shape_blockers) + "): B cannot be a "
                "copy of A's weights without reshaping."
            )
        if self.differences:
            lines += ["", "| field | A | B | meaning |", "|---|---|---|---|"]
            for d in self.differences:
                lines.append(f"| {d.field} | {d.a} | {d.b} | {d.meaning} |")
        else:
            lines.append("\nNo differences in the compared fields.")
        return "\n".join(lines)


class NearestResult(BaseModel):
    """Known architectures ranked by distance."""

    path: str
    summary: str
    neighbours: list[Neighbour]

    def to_markdown(self) -> str:
        """Render for people."""
        lines = [f"# Nearest known architectures to {self.path}", "", self.summary, ""]
        lines += ["| model | distance | published | main differences | source |"]
        lines += ["|---|---:|---|---|---|"]
        for n in self.neighbours:
            pub = n.published_total + (
                f" / {n.published_active} active" if n.published_active else ""
            )
            diffs = "; ".join(d.rstrip(".") for d in n.differences[:3]) or "same hyperparameters"
            lines.append(f"| {n.name} | {n.distance:.3f} | {pub} | {diffs} | {n.source} |")
        return "\n".join(lines)


class TokenizerResult(TokenizerComparison):
    """A tokenizer comparison with its manifest."""

    manifest: Manifest
    record_id: str | None = None

    def to_markdown(self) -> str:
        """Render for people."""
        mj = "n/a" if self.merges_jaccard is None else f"{self.merges_jaccard:.4f}"
        return "\n".join(
            [
                f"# Tokenizer comparison: **{self.relation}**",
                "",
                self.hint,
                "",
                "| | A | B |",
                "|---|---|---|",
                f"| file | {self.a} | {self.b} |",
                f"| kind | {self.kind_a} | {self.kind_b} |",
                f"| size (max id + 1) | {self.size_a:,} | {self.size_b:,} |",
                f"| token strings | {self.tokens_a:,} | {self.tokens_b:,} |",
                f"| merges | {self.merges_a:,} | {self.merges_b:,} |",
                "",
                f"- shared token strings: {self.shared:,} (Jaccard {self.jaccard:.4f})",
                f"- same ID among shared: {self.same_id_fraction:.4f}",
                f"- dominant ID shift (B − A): {self.dominant_shift:+d} "
                f"for {self.dominant_shift_fraction:.4f} of shared tokens",
                f"- merges overlap (Jaccard): {mj}",
            ]
        )


@tool(
    "arch.describe",
    description="Read a Hugging Face config.json into a normalised architecture spec with "
    "parameter counts and the nearest known public architecture.",
    read_only=True,
    cli="arch describe",
    positional=("path",),
    record=True,
)
def describe_tool(args: ArchInput, ctx: ToolContext) -> DescribeResult:
    """Describe one config."""
    spec, path = _load(args.path, ctx)
    return DescribeResult(
        spec=spec,
        params=count_params(spec),
        nearest=nearest(spec, 3),
        manifest=build_manifest(
            "arch.describe", args.model_dump(mode="json"), [path] if path else []
        ),
    )


@tool(
    "arch.params",
    description="Count total and active parameters of a model config (routed/shared experts, "
    "dense first layers, MTP separate, MLA, biases), with and without the input embedding.",
    read_only=True,
    cli="arch params",
    positional=("path",),
)
def params_tool(args: ArchInput, ctx: ToolContext) -> ParamsResult:
    """Count parameters of one config."""
    spec, path = _load(args.path, ctx)
    count = count_params(spec)
    return ParamsResult(
        **count.model_dump(), path=str(path or args.path), published=_published_line(spec, count)
    )


@tool(
    "arch.diff",
    description="Semantic diff of two model configs: each differing hyperparameter with its "
    "meaning, whether tensor shapes are compatible, and a distance score.",
    read_only=True,
    cli="arch diff",
    positional=("a", "b"),
)
def diff_tool(args: DiffInput, ctx: ToolContext) -> DiffResult:
    """Diff two configs."""
    a, pa = _load(args.a, ctx)
    b, pb = _load(args.b, ctx)
    d = diff_specs(a, b, str(pa or args.a), str(pb or args.b))
    return DiffResult(**d.model_dump())


@tool(
    "arch.nearest",
    description="Rank the built-in catalog of public open models by architectural distance "
    "to a config (with their published parameter counts and sources).",
    read_only=True,
    cli="arch nearest",
    positional=("path",),
)
def nearest_tool(args: NearestInput, ctx: ToolContext) -> NearestResult:
    """Nearest known architectures."""
    spec, path = _load(args.path, ctx)
    return NearestResult(
        path=str(path or args.path), summary=spec.summary(), neighbours=nearest(spec, args.k)
    )


@tool(
    "tokenizer.compare",
    description="Compare two tokenizers (tokenizer.json or vocab.txt): sizes, shared token "
    "strings, same-ID fraction, dominant ID shift, merges overlap, and same/extended/unrelated.",
    read_only=True,
    cli="tokenizer compare",
    positional=("a", "b"),
    record=True,
)
def tokenizer_tool(args: TokenizerInput, ctx: ToolContext) -> TokenizerResult:
    """Compare two tokenizers."""
    va = load_vocab(ctx.path(args.a))
    ctx.check_cancelled()
    vb = load_vocab(ctx.path(args.b))
    ctx.check_cancelled()
    cmp = compare_vocabs(va, vb)
    manifest = build_manifest(
        "tokenizer.compare", args.model_dump(mode="json"), [Path(va.path), Path(vb.path)]
    )
    return TokenizerResult(**cmp.model_dump(), manifest=manifest)
