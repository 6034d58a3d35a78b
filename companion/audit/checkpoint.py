"""Open a checkpoint given as a safetensors file, a sharded index, or a folder holding either."""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from companion.audit.safetensors import SafetensorsFile, TensorInfo
from companion.errors import InputError

INDEX_NAME = "model.safetensors.index.json"
MAX_JSON_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor lives: its file and header entry."""

    file: SafetensorsFile
    info: TensorInfo


@dataclass
class Checkpoint:
    """A set of safetensors files seen as one name -> tensor map, plus config.json if present."""

    path: Path
    files: list[SafetensorsFile]
    tensors: dict[str, TensorRef]
    config: dict[str, Any] = field(default_factory=dict)
    extra_inputs: list[Path] = field(default_factory=list)

    @property
    def input_files(self) -> list[Path]:
        """Every file this checkpoint was read from (for the manifest)."""
        return [f.path for f in self.files] + self.extra_inputs

    @property
    def nbytes(self) -> int:
        """Total tensor bytes."""
        return sum(r.info.end - r.info.begin for r in self.tensors.values())

    def close(self) -> None:
        """Unmap every file."""
        for f in self.files:
            f.close()


def _stat(path: Path, what: str) -> os.stat_result:
    """stat() with clear errors for missing files and symlink loops."""
    try:
        return path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(
                f"{what} {path} is a symlink loop.", hint="point the symlink at a real file."
            ) from None
        if exc.errno == errno.ENOENT:
            raise InputError(f"{what} {path} does not exist.", hint="check the path.") from None
        raise InputError(
            f"Cannot read {what} {path}: {exc.strerror or exc}.", hint="check permissions."
        ) from None


def _load_json(path: Path, what: str) -> Any:
    """Read a small JSON file with a size cap and clear errors."""
    if _stat(path, what).st_size > MAX_JSON_BYTES:
        raise InputError(f"{what} {path} is larger than 100 MB.", hint="check the file.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"{what} {path} is not valid JSON ({str(exc)[:120]}).", hint="re-export the file."
        ) from None


def _open_index(index: Path) -> tuple[list[SafetensorsFile], dict[str, TensorRef]]:
    """Open every shard named by a model.safetensors.index.json."""
    data = _load_json(index, "Index")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise InputError(
            f"Index {index} has no weight_map of tensor name -> shard file.",
            hint="re-export the sharded checkpoint.",
        )
    shards: dict[str, SafetensorsFile] = {}
    tensors: dict[str, TensorRef] = {}
    for name, shard in sorted(weight_map.items()):
        if Path(shard).name != shard or shard in ("", ".", ".."):
            raise InputError(
                f"Index {index} names shard {shard!r}, which is not a file in its folder.",
                hint="shard names must be plain file names next to the index.",
            )
        if shard not in shards:
            shard_path = index.parent / shard
            if _stat(shard_path, "Shard").st_size == 0 and not shard_path.is_file():
                raise InputError(f"Shard {shard_path} is not a file.", hint="check the index.")
            shards[shard] = SafetensorsFile(shard_path)
        file = shards[shard]
        if name not in file.tensors:
            raise InputError(
                f"Index {index} puts tensor {name!r} in {shard}, which does not contain it.",
                hint="the index and shards disagree; re-export the checkpoint.",
            )
        tensors[name] = TensorRef(file, file.tensors[name])
    return list(shards.values()), tensors


def _open_files(paths: list[Path]) -> tuple[list[SafetensorsFile], dict[str, TensorRef]]:
    """Open standalone files; a name appearing in two files is an error."""
    files = [SafetensorsFile(p) for p in paths]
    tensors: dict[str, TensorRef] = {}
    for f in files:
        for name, info in f.tensors.items():
            if name in tensors:
                raise InputError(
                    f"Tensor {name!r} appears in both {tensors[name].file.path} and {f.path}.",
                    hint="pass one checkpoint file, or a folder with a model index.",
                )
            tensors[name] = TensorRef(f, info)
    return files, tensors


def open_checkpoint(path: Path) -> Checkpoint:
    """Open a .safetensors file, a *.safetensors.index.json, or a folder holding them."""
    _stat(path, "Checkpoint")
    extra: list[Path] = []
    folder = path if os.path.isdir(path) else path.parent
    if os.path.isdir(path):
        indexes = sorted(path.glob("*.safetensors.index.json"))
        index = path / INDEX_NAME if (path / INDEX_NAME).exists() else None
        index = index or (indexes[0] if len(indexes) == 1 else None)
        if index is not None:
            files, tensors = _open_index(index)
            extra.append(index)
        else:
            found = sorted(p for p in path.glob("*.safetensors") if not p.name.startswith("."))
            if not found:
                raise InputError(
                    f"No .safetensors files in {path}.",
                    hint="pass a checkpoint folder, a .safetensors file or an index.json.",
                )
            files, tensors = _open_files(found)
    elif path.name.endswith(".index.json"):
        files, tensors = _open_index(path)
        extra.append(path)
    else:
        files, tensors = _open_files([path])
    config: dict[str, Any] = {}
    cfg = folder / "config.json"
    if cfg.is_file():
        loaded = _load_json(cfg, "Config")
        if isinstance(loaded, dict):
            config = loaded
            extra.append(cfg)
    if not tensors:
        raise InputError(f"Checkpoint {path} holds no tensors.", hint="check the file.")
    return Checkpoint(path=path, files=files, tensors=tensors, config=config, extra_inputs=extra)
