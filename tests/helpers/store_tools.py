"""Test-only recordable tools (an audit, an evidence summary, a tokenizer comparison).

They do real, deterministic computations on files the tests generate, so the store and
`companion verify` see genuine results that change when the inputs change. Importing this
module registers them in the tool registry of the importing process.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from companion.errors import InputError
from companion.manifest import Manifest, build_manifest
from companion.tools import Facts, ToolContext, ToolResult, tool

Verdict = Literal["derived", "independent", "inconclusive"]


class PairInput(BaseModel):
    """Two files to compare chunk by chunk."""

    a: str
    b: str
    chunks: int = Field(default=8, ge=2, le=100_000)
    jitter_file: str | None = Field(
        default=None, description="Not hashed: a number added to results (nondeterminism)."
    )


class TensorResult(BaseModel):
    """One chunk's metrics and baselines."""

    name_a: str
    name_b: str
    role: str
    layer: int | None
    cosine: float
    pearson: float
    rel_l2: float
    baselines: dict[str, float]
    z: float
    p: float


class PairResult(ToolResult):
    """A test audit result shaped like the real one."""

    verdict: Verdict
    reasons: list[str]
    per_tensor: list[TensorResult]
    manifest: Manifest

    def facts(self) -> Facts:
        """An audit."""
        return Facts(
            table="audit", verdict=self.verdict, reasons=tuple(self.reasons), rows=self.per_tensor
        )


def _values(path: Path) -> np.ndarray:
    """File bytes as float64 values."""
    if not path.is_file():
        raise InputError(f"{path} does not exist.", hint="pass an existing file.")
    return np.frombuffer(path.read_bytes(), dtype=np.uint8).astype(np.float64)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Mean-centred correlation (0 for constant input)."""
    xc, yc = x - x.mean(), y - y.mean()
    denom = float(np.linalg.norm(xc) * np.linalg.norm(yc))
    return float(xc @ yc / denom) if denom else 0.0


@tool(
    "audit.test_compare",
    description="test-only audit",
    read_only=True,
    record=True,
    cli="test-audit",
)
def test_compare(args: PairInput, ctx: ToolContext) -> PairResult:
    """Compare two files chunk by chunk with cosine/pearson and a shuffle baseline."""
    pa, pb = ctx.path(args.a), ctx.path(args.b)
    a, b = _values(pa), _values(pb)
    n = min(a.size, b.size)
    jitter = float(Path(args.jitter_file).read_text()) if args.jitter_file else 0.0
    rng = np.random.default_rng(0)
    rows = []
    for i, (xa, xb) in enumerate(
        zip(np.array_split(a[:n], args.chunks), np.array_split(b[:n], args.chunks), strict=True)
    ):
        pearson = _pearson(xa, xb) + jitter
        shuffled = _pearson(xa, rng.permutation(xb))
        cos = float(xa @ xb / (np.linalg.norm(xa) * np.linalg.norm(xb) or 1.0))
        z = (pearson - shuffled) * math.sqrt(max(xa.size - 3, 1))
        role = "attn_norm" if i % 2 == 0 else "mlp"
        name = (
            f"model.layers.{i // 2}.input_layernorm.weight"
            if role == "attn_norm"
            else f"model.layers.{i // 2}.mlp.down_proj.weight"
        )
        rows.append(
            TensorResult(
                name_a=name,
                name_b=name,
                role=role,
                layer=i // 2,
                cosine=cos,
                pearson=pearson,
                rel_l2=float(np.linalg.norm(xa - xb) / (np.linalg.norm(xa) or 1.0)),
                baselines={"shuffle_pearson": shuffled},
                z=z,
                p=0.5 * math.erfc(z / math.sqrt(2)),
            )
        )
        ctx.check_cancelled()
    mean = float(np.mean([r.pearson for r in rows]))
    verdict: Verdict = "derived" if mean > 0.9 else "independent" if mean < 0.3 else "inconclusive"
    return PairResult(
        verdict=verdict,
        reasons=[f"mean pearson {mean:.3f} over {len(rows)} chunks"],
        per_tensor=rows,
        manifest=build_manifest("audit.test_compare", args.model_dump(mode="json"), [pa, pb]),
    )


class LogInput(BaseModel):
    """A 'training log' holding one number per line."""

    path: str


class LogSummary(ToolResult):
    """A test evidence summary."""

    verdict: Verdict
    reasons: list[str]
    first_loss: float
    steps: int
    manifest: Manifest

    def facts(self) -> Facts:
        """An evidence summary."""
        return Facts(table="evidence", verdict=self.verdict, reasons=tuple(self.reasons))


@tool(
    "evidence.test_summary",
    description="test-only evidence",
    read_only=True,
    record=True,
    cli="test-evidence",
)
def test_summary(args: LogInput, ctx: ToolContext) -> LogSummary:
    """First loss near ln(vocab) means a random start."""
    p = ctx.path(args.path)
    losses = [float(x) for x in p.read_text().split()]
    first = losses[0]
    verdict: Verdict = "independent" if first > 10 else "derived"
    return LogSummary(
        verdict=verdict,
        reasons=[f"first loss {first}"],
        first_loss=first,
        steps=len(losses),
        manifest=build_manifest("evidence.test_summary", args.model_dump(mode="json"), [p]),
    )


class TokInput(BaseModel):
    """Two vocab files, one token per line."""

    a: str
    b: str


class TokResult(ToolResult):
    """A test tokenizer comparison."""

    overlap: float
    verdict: Verdict
    manifest: Manifest

    def facts(self) -> Facts:
        """A tokenizer comparison."""
        return Facts(table="tokenizer", verdict=self.verdict)


@tool(
    "tokenizer.test_compare",
    description="test-only tokenizer",
    read_only=True,
    record=True,
    cli="test-tokenizer",
)
def test_tokenizers(args: TokInput, ctx: ToolContext) -> TokResult:
    """Jaccard overlap of two vocabularies."""
    pa, pb = ctx.path(args.a), ctx.path(args.b)
    va, vb = set(pa.read_text().split()), set(pb.read_text().split())
    overlap = len(va & vb) / max(len(va | vb), 1)
    return TokResult(
        overlap=overlap,
        verdict="derived" if overlap > 0.9 else "independent",
        manifest=build_manifest("tokenizer.test_compare", args.model_dump(mode="json"), [pa, pb]),
    )


def make_pair(
    folder: Path, size: int = 4096, related: bool = True, seed: int = 1
) -> tuple[Path, Path]:
    """Two 'checkpoints': B is A plus small noise (related) or fresh random bytes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    a = rng.integers(0, 256, size, dtype=np.uint8)
    if related:
        b = np.clip(a.astype(np.int16) + rng.integers(-3, 4, size), 0, 255).astype(np.uint8)
    else:
        b = rng.integers(0, 256, size, dtype=np.uint8)
    (folder / "base").mkdir(exist_ok=True)
    (folder / "tuned").mkdir(exist_ok=True)
    pa, pb = folder / "base" / "model.safetensors", folder / "tuned" / "model.safetensors"
    pa.write_bytes(a.tobytes())
    pb.write_bytes(b.tobytes())
    return pa, pb
