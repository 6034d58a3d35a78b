"""Find model artifacts (checkpoints, configs, tokenizers, logs) under folders."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from companion import files
from companion.errors import InputError
from companion.jobs import Job
from companion.workspace.schemas import Artifact, Kind, ScanProblem, ScanResult

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


def _is_lfs_pointer(path: Path, size: int) -> bool:
    """A small file that starts with the Git LFS pointer header."""
    if size > 1024:
        return False
    return files.current().head(path, len(_LFS_MAGIC), "File") == _LFS_MAGIC


def _looks_like_model_config(path: Path, size: int) -> bool:
    """config.json-like files that carry model hyperparameters (by content, cheaply)."""
    if size > 2_000_000:
        return False
    head = files.current().head(path, 65536, "File")
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


def scan(paths: list[Path], max_files: int, job: Job | None = None) -> ScanResult:
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
        found = [root] if root.is_file() else _walk(root, on_error)
        for path in found:
            if seen >= max_files:
                truncated = True
                break
            seen += 1
            if job is not None and seen % 512 == 0:
                job.check()
            try:
                if path.is_symlink() and not path.exists():
                    on_error(str(path), "broken or looping symlink")
                    continue
                st = path.stat()
                if not stat.S_ISREG(st.st_mode):
                    on_error(str(path), "not a regular file (FIFO, device or socket); skipped")
                    continue
                if not files.current().allows(path):
                    on_error(str(path), "resolves outside the workspace folders; skipped")
                    continue
                size = st.st_size
                kind = classify(path, size)
            except OSError as exc:
                on_error(str(path), exc.strerror or str(exc))
                continue
            except InputError as exc:
                on_error(str(path), exc.message)
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
