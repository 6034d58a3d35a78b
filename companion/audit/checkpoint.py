"""Open a checkpoint: safetensors (file, sharded index or folder), GGUF, PyTorch zip, or a URL."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from companion import files as file_access
from companion.audit.remote_http import RemoteOptions
from companion.audit.safetensors import SafetensorsFile, TensorInfo, paused_gc
from companion.audit.source import TensorFile
from companion.convert import loads
from companion.errors import InputError
from companion.manifest import InputFile

if TYPE_CHECKING:
    from companion.audit.remote_file import RemoteFile

INDEX_NAME = "model.safetensors.index.json"
MAX_JSON_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor lives: its file and header entry."""

    file: TensorFile
    info: TensorInfo


@dataclass
class Checkpoint:
    """A set of tensor files seen as one name -> tensor map, plus config.json if present."""

    path: Path
    files: list[TensorFile]
    tensors: dict[str, TensorRef]
    config: dict[str, Any] = field(default_factory=dict)
    extra_inputs: list[Path] = field(default_factory=list)
    source: str | None = None  # the URL or hf:// reference as given, for a remote checkpoint

    @property
    def label(self) -> str:
        """How results name it: the path, or the URL / hf:// reference the user gave."""
        return self.source or str(self.path)

    @property
    def input_files(self) -> list[Path]:
        """Every file this checkpoint was read from (for the manifest)."""
        return [f.path for f in self.files if f.local] + self.extra_inputs

    @property
    def remote(self) -> bool:
        """Whether any of its files is behind a URL."""
        return any(not f.local for f in self.files)

    def remote_plan(self, names: list[str], gap: int) -> list[tuple[RemoteFile, tuple[int, int]]]:
        """The (file, range) fetches remote files still need for these tensors."""
        from companion.audit.remote_file import RemoteFile

        out: list[tuple[RemoteFile, tuple[int, int]]] = []
        for f in self.files:
            if isinstance(f, RemoteFile):
                infos = [self.tensors[n].info for n in names if self.tensors[n].file is f]
                out += [(f, r) for r in f.plan(infos, gap)]
        return out

    def remote_inputs(self) -> list[InputFile]:
        """Manifest entries of remote files: URL, revision, ETag, ranges read and their sha256."""
        from companion.audit.remote_file import RemoteFile

        return [f.manifest_entry() for f in self.files if isinstance(f, RemoteFile)]

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
    """Read a small JSON file (regular, size-capped, confined) with clear errors."""
    _stat(path, what)
    return loads(
        file_access.read_bytes(path, MAX_JSON_BYTES, what), f"{what} {path}", "re-export it."
    )


def _open_index(index: Path) -> tuple[list[TensorFile], dict[str, TensorRef]]:
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
    shards: dict[str, TensorFile] = {}
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
            try:
                shards[shard] = _open_file(shard_path)
            except BaseException:
                _close_all(shards.values())  # a failed open must not leak the shards before it
                raise
        file = shards[shard]
        if name not in file.tensors:
            _close_all(shards.values())
            raise InputError(
                f"Index {index} puts tensor {name!r} in {shard}, which does not contain it.",
                hint="the index and shards disagree; re-export the checkpoint.",
            )
        tensors[name] = TensorRef(file, file.tensors[name])
    return list(shards.values()), tensors


def _open_file(path: Path) -> TensorFile:
    """Open one local weights file by its format (GGUF, PyTorch zip, else safetensors); the
    first bytes decide over the name, as each format's own loader decides."""
    from companion.audit.gguf_format import is_gguf
    from companion.audit.torchbin import TORCH_SUFFIXES, TorchFile
    from companion.audit.torchzip import is_safetensors

    if path.suffix == ".gguf" or is_gguf(path):
        from companion.audit.gguf import GGUFFile

        return GGUFFile(path)
    if path.suffix in TORCH_SUFFIXES and not is_safetensors(path):
        return TorchFile(path)
    return SafetensorsFile(path)


def _open_files(paths: list[Path]) -> tuple[list[TensorFile], dict[str, TensorRef]]:
    """Open standalone files; a name appearing in two files is an error."""
    files: list[TensorFile] = []
    with paused_gc():  # a million entries merge in a third of the time without its passes
        try:
            for p in paths:
                files.append(_open_file(p))
        except BaseException:
            for f in files:
                f.close()
            raise
        return _merge(files)


def _merge(files: list[TensorFile]) -> tuple[list[TensorFile], dict[str, TensorRef]]:
    """One name -> tensor map over files; a name appearing in two files is an error."""
    tensors: dict[str, TensorRef] = {}
    for f in files:
        for name, info in f.tensors.items():
            if name in tensors:
                _close_all(files)
                raise InputError(
                    f"Tensor {name!r} appears in both {tensors[name].file.path} and {f.path}.",
                    hint="pass one checkpoint file, or a folder with a model index.",
                )
            tensors[name] = TensorRef(f, info)
    return files, tensors


def _close_all(opened: Iterable[TensorFile]) -> None:
    """Close the files opened so far (an open that fails half-way must not leak descriptors)."""
    for f in opened:
        f.close()


def _folder_index(path: Path) -> Path | None:
    """The folder's shard index: model.safetensors.index.json, else the only *.index.json."""
    if (path / INDEX_NAME).exists():
        return path / INDEX_NAME
    for pattern in ("*.safetensors.index.json", "*.bin.index.json"):
        indexes = sorted(path.glob(pattern))
        if len(indexes) == 1:
            return indexes[0]
    return None


def _folder_files(path: Path) -> list[Path]:
    """The weights files of a folder: its safetensors, else its one GGUF, else its .bin/.pt."""
    for pattern in ("*.safetensors", "*.gguf", "*.bin", "*.pt", "*.pth"):
        found = sorted(p for p in path.glob(pattern) if not p.name.startswith("."))
        if pattern == "*.gguf" and len(found) > 1:
            names = ", ".join(p.name for p in found[:4])
            raise InputError(
                f"{path} holds several GGUF files ({names}).",
                hint="pass the one GGUF file to audit (each is a different quantization).",
            )
        if found:
            return found
    raise InputError(
        f"No .safetensors, .gguf or .bin files in {path}.",
        hint="pass a checkpoint folder, a weights file or an index.json.",
    )


def open_checkpoint(path: Path | str, settings: RemoteOptions | None = None) -> Checkpoint:
    """Open a weights file, an index, a folder, or a URL / hf:// reference (a str)."""
    if isinstance(path, str):
        from companion.audit.remote import open_remote

        remote = open_remote(path, settings or RemoteOptions.from_settings())
        files, tensors = _merge(list(remote))
        return Checkpoint(path=remote[0].path, files=files, tensors=tensors, source=path)
    _stat(path, "Checkpoint")
    extra: list[Path] = []
    folder = path if os.path.isdir(path) else path.parent
    if os.path.isdir(path):
        index = _folder_index(path)
        if index is not None:
            files, tensors = _open_index(index)
            extra.append(index)
        else:
            files, tensors = _open_files(_folder_files(path))
    elif path.name.endswith(".index.json"):
        files, tensors = _open_index(path)
        extra.append(path)
    else:
        files, tensors = _open_files([path])
    try:
        config = _config(folder, extra)
        if not tensors:
            raise InputError(f"Checkpoint {path} holds no tensors.", hint="check the file.")
    except BaseException:
        _close_all(files)
        raise
    return Checkpoint(path=path, files=files, tensors=tensors, config=config, extra_inputs=extra)


def _config(folder: Path, extra: list[Path]) -> dict[str, Any]:
    """The config.json beside the checkpoint, if any (recorded as an input)."""
    cfg = folder / "config.json"
    if cfg.is_file():
        loaded = _load_json(cfg, "Config")
        if isinstance(loaded, dict):
            extra.append(cfg)
            return loaded
    return {}
