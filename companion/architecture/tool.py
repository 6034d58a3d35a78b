"""Tool declarations: arch.describe, arch.params, arch.diff, arch.nearest, tokenizer.compare."""

from __future__ import annotations

from pathlib import Path

from companion.architecture import engine
from companion.architecture.schemas import (
    ArchInput,
    DescribeResult,
    DiffInput,
    DiffResult,
    NearestInput,
    NearestResult,
    ParamsResult,
    TokenizerInput,
    TokenizerResult,
)
from companion.manifest import build_manifest
from companion.tools import ToolContext, tool


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
    spec, path = engine.load(args.path, ctx.path)
    manifest = build_manifest("arch.describe", args.model_dump(mode="json"), [path] if path else [])
    return engine.describe(spec, manifest)


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
    spec, path = engine.load(args.path, ctx.path)
    return engine.params(spec, str(path or args.path))


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
    a, pa = engine.load(args.a, ctx.path)
    b, pb = engine.load(args.b, ctx.path)
    return engine.diff(a, b, str(pa or args.a), str(pb or args.b))


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
    spec, path = engine.load(args.path, ctx.path)
    return engine.rank(spec, str(path or args.path), args.k)


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
    params = args.model_dump(mode="json")

    def manifest(files: list[Path]):  # type: ignore[no-untyped-def]
        return build_manifest("tokenizer.compare", params, files)

    return engine.compare_tokenizers(ctx.path(args.a), ctx.path(args.b), ctx.job(), manifest)
