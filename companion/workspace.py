"""The `workspace.scan` tool: list model artifacts (checkpoints, configs, tokenizers, logs)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from companion.errors import InputError
from companion.tools import ToolContext, tool

Kind = Literal[
    "checkpoint", "safetensors_index", "config", "tokenizer", "training_log", "chat", "lfs_pointer"
]

_LOG_NAMES = re.compile(
    r"(trainer_state\.json|trainer_log\.jsonl|wandb-summary\.json|output\.log|main\.log"
    r"|events\.out\.tfevents\..*|run-.*\.wandb|.*\.log|.*train.*\.(txt|csv|jsonl))$",
    re.IGNORECASE,
)
_TOKENIZER_NAMES = {
    "tokenizer.json",
    "vocab.txt",
    "tokenizer.model",
    "tokenizer_config.json",
    "merges.txt",
    "vocab.json",
}
_SKIP_DIRS = {
    ".companion",
    ".git",
    ".venv",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
}
_LFS_MAGIC = b"version https://git-lfs.github.com/spec/v1"


class ScanInput(BaseModel):
    """Arguments of `workspace.scan`."""

    paths: list[str] = Field(
        default_factory=list,
        description="Folders to scan; default: the workspace folders (or the current directory).",
    )
    max_files: int | None = Field(default=None, ge=1, description="Stop after this many files.")


class Artifact(BaseModel):
    """One model artifact found on disk."""

    path: str
    kind: Kind
    size: int


class ScanProblem(BaseModel):
    """A path that could not be read, with the reason."""

    path: str
    reason: str


class ScanResult(BaseModel):
    """What `workspace.scan` found, grouped by kind, with unreadable paths listed."""

    roots: list[str]
    artifacts: list[Artifact]
    counts: dict[str, int]
    total_bytes: int
    files_seen: int
    truncated: bool = False
    problems: list[ScanProblem] = Field(default_factory=list)

    def to_markdown(self) -> str:
        """Render as a markdown table."""
        lines = [f"# Workspace scan: {', '.join(self.roots)}", ""]
        if not self.artifacts:
            lines.append("No model artifacts found.")
        else:
            lines += ["| kind | path | size |", "|---|---|---|"]
            lines += [f"| {a.kind} | {a.path} | {_human(a.size)} |" for a in self.artifacts]
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items())) or "none"
        lines += ["", f"{self.files_seen} files seen; {counts}; {_human(self.total_bytes)} total."]
        if self.truncated:
            lines.append("Scan stopped at the file limit (setting scan_max_files).")
        if self.problems:
            lines.append(f"{len(self.problems)} unreadable paths skipped:")
            lines += [f"- {p.path}: {p.reason}" for p in self.problems[:20]]
        return "\n".join(lines)


def _human(n: int) -> str:
    """Bytes as a short human string."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _is_lfs_pointer(path: Path, size: int) -> bool:
    """A small file that starts with the Git LFS pointer header."""
    if size > 1024:
        return False
    with path.open("rb") as fh:
        return fh.read(len(_LFS_MAGIC)) == _LFS_MAGIC


def _looks_like_model_config(path: Path, size: int) -> bool:
    """config.json-like files that carry model hyperparameters (by content, cheaply)."""
    if size > 2_000_000:
        return False
    head = path.read_bytes()[:65536]
    return any(k in head for k in (b'"model_type"', b'"hidden_size"', b'"n_embd"', b'"d_model"'))


def classify(path: Path, size: int) -> Kind | None:
    """Decide what kind of model artifact a file is, or None."""
    name = path.name
    if _is_lfs_pointer(path, size):
        return "lfs_pointer"
    if name.endswith(".safetensors"):
        return "checkpoint"
    if name.endswith(".safetensors.index.json"):
        return "safetensors_index"
    if name.endswith(".chat.md"):
        return "chat"
    if name in _TOKENIZER_NAMES:
        return "tokenizer"
    if name.endswith(".json") and name not in {"trainer_state.json", "wandb-summary.json"}:
        return "config" if _looks_like_model_config(path, size) else None
    if _LOG_NAMES.match(name):
        return "training_log"
    return None


def _walk(root: Path, on_error: Callable[[str, str], None]) -> Iterator[Path]:
    """Walk files without following symlinked directories (so loops cannot trap us)."""

    def report(err: OSError) -> None:
        on_error(str(err.filename or root), err.strerror or str(err))

    for dirpath, dirnames, filenames in os.walk(root, onerror=report, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for f in sorted(filenames):
            yield Path(dirpath) / f


def scan(paths: list[Path], max_files: int, ctx: ToolContext | None = None) -> ScanResult:
    """Scan folders for model artifacts; unreadable paths are listed, never fatal."""
    problems: list[ScanProblem] = []
    artifacts: list[Artifact] = []
    seen = 0
    truncated = False

    def on_error(path: str, reason: str) -> None:
        problems.append(ScanProblem(path=path, reason=reason))

    for root in paths:
        if not root.exists():
            raise InputError(f"{root} does not exist.", hint="pass an existing folder to scan.")
        files = [root] if root.is_file() else _walk(root, on_error)
        for path in files:
            if seen >= max_files:
                truncated = True
                break
            seen += 1
            if ctx is not None and seen % 512 == 0:
                ctx.check_cancelled()
            try:
                if path.is_symlink() and not path.exists():
                    on_error(str(path), "broken or looping symlink")
                    continue
                size = path.stat().st_size
                kind = classify(path, size)
            except OSError as exc:
                on_error(str(path), exc.strerror or str(exc))
                continue
            if kind is not None:
                artifacts.append(Artifact(path=str(path), kind=kind, size=size))
    counts: dict[str, int] = {}
    for a in artifacts:
        counts[a.kind] = counts.get(a.kind, 0) + 1
    return ScanResult(
        roots=[str(p) for p in paths],
        artifacts=artifacts,
        counts=counts,
        total_bytes=sum(a.size for a in artifacts),
        files_seen=seen,
        truncated=truncated,
        problems=problems,
    )


@tool(
    "workspace.scan",
    description="List model artifacts (checkpoints, configs, tokenizers, training logs) "
    "under the workspace folders, by kind, with sizes.",
    read_only=True,
    cli="scan",
    positional=("paths",),
)
def scan_tool(args: ScanInput, ctx: ToolContext) -> ScanResult:
    """Tool entry point for `workspace.scan`."""
    roots = [ctx.path(p) for p in args.paths] or ctx.roots or [Path.cwd()]
    return scan(roots, args.max_files or ctx.settings.scan_max_files, ctx)
