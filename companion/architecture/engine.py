"""The architecture engine: describe, count, diff and rank configs; compare tokenizers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from companion.architecture.catalog import find
from companion.architecture.diff import diff_specs
from companion.architecture.nearest import nearest
from companion.architecture.params import ParamCount, count_params
from companion.architecture.schemas import (
    DescribeResult,
    DiffResult,
    NearestResult,
    ParamsResult,
    TokenizerResult,
)
from companion.architecture.spec import ArchSpec, resolve_config_path, spec_from_path
from companion.architecture.tokenizer import compare_vocabs, load_vocab
from companion.jobs import Job
from companion.manifest import Manifest

Resolve = Callable[[str], Path]  # a user path to a checked, absolute path


def load(ref: str, resolve: Resolve) -> tuple[ArchSpec, Path | None]:
    """A spec from a path or a catalog reference, with the config file used."""
    if ref.startswith("catalog:"):
        return find(ref).spec(), None
    path = resolve_config_path(resolve(ref))
    return spec_from_path(path), path


def published_line(spec: ArchSpec, p: ParamCount) -> str | None:
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


def describe(spec: ArchSpec, manifest: Manifest) -> DescribeResult:
    """The spec, its parameter count and its three nearest known architectures."""
    return DescribeResult(
        spec=spec, params=count_params(spec), nearest=nearest(spec, 3), manifest=manifest
    )


def params(spec: ArchSpec, label: str) -> ParamsResult:
    """The parameter count, with the published figures when the spec is a known model."""
    count = count_params(spec)
    return ParamsResult(**count.model_dump(), path=label, published=published_line(spec, count))


def diff(a: ArchSpec, b: ArchSpec, label_a: str, label_b: str) -> DiffResult:
    """A semantic diff of two specs."""
    return DiffResult(**diff_specs(a, b, label_a, label_b).model_dump())


def rank(spec: ArchSpec, label: str, k: int) -> NearestResult:
    """The k nearest known architectures."""
    return NearestResult(path=label, summary=spec.summary(), neighbours=nearest(spec, k))


def compare_tokenizers(
    a: Path, b: Path, job: Job, manifest: Callable[[list[Path]], Manifest]
) -> TokenizerResult:
    """Compare two tokenizer files; `manifest` hashes the files actually read."""
    va = load_vocab(a)
    job.check()
    vb = load_vocab(b)
    job.check()
    cmp = compare_vocabs(va, vb)
    return TokenizerResult(**cmp.model_dump(), manifest=manifest([Path(va.path), Path(vb.path)]))
