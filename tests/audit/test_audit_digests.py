"""The digest cache: reused only for untouched files, re-read after any change, never fatal."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from companion import digests
from companion.audit.schemas import AuditResult
from companion.manifest import sha256_file
from companion.settings import Settings
from companion.toolbox import run_tool
from companion.tools import ToolContext


def _audit(a: Path, b: Path, settings: Settings | None = None) -> dict[str, tuple[str, str]]:
    """Audit and return {file name: (sha256, where it came from)} for the safetensors inputs."""
    ctx = ToolContext(settings=settings) if settings else ToolContext()
    r = run_tool("audit.compare", {"a": str(a), "b": str(b), "baselines": False}, ctx)
    assert isinstance(r, AuditResult)
    return {
        Path(i.path).parent.name: (i.sha256, i.sha256_from)
        for i in r.manifest.inputs
        if i.path.endswith(".safetensors")
    }


@pytest.fixture()
def pair(fam: dict[str, Path], tmp_path: Path) -> tuple[Path, Path]:
    """Private copies of a base and its fine-tune (so the test may change them)."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(fam["base"], a)
    shutil.copytree(fam["finetune"], b)
    return a, b


def test_unchanged_files_reuse_their_digest(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second audit takes both digests from the cache; a rewritten file is read again."""
    monkeypatch.setattr(digests, "_SETTLE_NS", 0)  # the files were written just now
    a, b = pair
    first = _audit(a, b)
    assert {src for _, src in first.values()} == {"read"}
    second = _audit(a, b)
    assert second == {k: (sha, "cache") for k, (sha, _) in first.items()}
    # Same size, one byte different, written in place: ctime and mtime move on.
    st = b / "model.safetensors"
    data = bytearray(st.read_bytes())
    data[-1] ^= 0x01
    st.write_bytes(bytes(data))
    third = _audit(a, b)
    assert third["a"] == (first["a"][0], "cache")
    assert third["b"] == (sha256_file(st), "read") and third["b"][0] != first["b"][0]


def test_a_file_changed_moments_before_is_not_cached(pair: tuple[Path, Path]) -> None:
    """Files changed within the settle time (2 s) are hashed every time (racy-clean rule)."""
    a, b = pair
    os.utime(a / "model.safetensors")
    _audit(a, b)
    again = _audit(a, b)
    assert again["a"][1] == "read"


def test_cache_off_and_corrupt_cache(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """digest_cache=false always reads; a corrupt cache file is left alone with a warning."""
    monkeypatch.setattr(digests, "_SETTLE_NS", 0)
    a, b = pair
    off = Settings(digest_cache=False)
    _audit(a, b, off)
    assert {src for _, src in _audit(a, b, off).values()} == {"read"}
    path = Settings().digest_path()
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="companion.digests"):
        result = _audit(a, b)
    assert {src for _, src in result.values()} == {"read"}
    assert result["a"][0] == sha256_file(a / "model.safetensors")
    assert "Delete it" in caplog.text
    assert path.read_bytes() == b"not a database" * 100
