"""Reproducibility manifests: sha256 of every input file, tool version and parameters."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from companion import __version__
from companion.errors import InputError
from companion.model import Model

_CHUNK = 1 << 22


class InputFile(Model):
    """One input file: where it was, its size and content hash."""

    path: str
    size: int
    sha256: str
    sha256_from: Literal["read", "cache", "remote"] = Field(
        default="read",
        description="'cache': reused from the digest cache (file unchanged since it was hashed). "
        "'remote': `path` is a URL and `sha256` its ETag (the hub's LFS sha256).",
    )
    revision: str | None = Field(default=None, description="Hub revision of a remote file.")
    ranges: list[list[int]] | None = Field(
        default=None, description="Byte ranges [begin, end) read from a remote file."
    )
    ranges_sha256: str | None = Field(
        default=None, description="sha256 of the bytes of `ranges`, concatenated in order."
    )


class Manifest(Model):
    """Everything needed to reproduce a result: tool, version, parameters and input hashes."""

    tool: str
    tool_version: str = __version__
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[InputFile] = Field(default_factory=list)
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def sha256_file(path: Path) -> str:
    """Hash a file in 4 MiB chunks (memory stays flat)."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise InputError(
            f"Cannot read {path} to hash it: {exc.strerror or exc}.",
            hint="check the file exists and is readable.",
        ) from None
    return h.hexdigest()


def build_manifest(tool: str, parameters: dict[str, Any], files: Iterable[Path]) -> Manifest:
    """Hash every input file (deduplicated, sorted) and record the parameters."""
    unique = sorted({p.resolve() for p in files})
    inputs = [InputFile(path=str(p), size=p.stat().st_size, sha256=sha256_file(p)) for p in unique]
    return Manifest(tool=tool, parameters=parameters, inputs=inputs)
