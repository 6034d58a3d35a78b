"""The store engine's entry for registering model files; querying, recording, exporting and
verifying live beside it (query.py, record.py, export.py, verify.py, check.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from companion.errors import InputError
from companion.jobs import Job
from companion.manifest import Manifest
from companion.store.schemas import RegisterResult

_MODEL_SUFFIXES = (".safetensors", ".json", ".bin", ".model", ".txt", ".gguf", ".pt")


def model_files(path: Path) -> list[Path]:
    """A file, or the model files directly inside a folder."""
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _MODEL_SUFFIXES)
        if found:
            return found
    raise InputError(
        f"{path} is not a file or a folder with model files.",
        hint="pass a checkpoint file or a model folder (safetensors, config.json...).",
    )


def register(
    paths: list[Path], job: Job, manifest: Callable[[list[Path]], Manifest]
) -> RegisterResult:
    """The sha256 and size of every model file under `paths` (files or model folders)."""
    files: list[Path] = []
    for p in paths:
        job.check()
        files += model_files(p)
    built = manifest(files)
    return RegisterResult(
        files=len(built.inputs), total_bytes=sum(f.size for f in built.inputs), manifest=built
    )
