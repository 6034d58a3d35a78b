"""Remote safetensors checkpoints by URL: `https://.../model.safetensors`, index URLs, `hf://`.

`hf://ORG/NAME[@REVISION][/FILE]` resolves to `{endpoint}/ORG/NAME/resolve/REVISION/FILE`
(revision `main`; endpoint from HF_ENDPOINT, else the `hf_endpoint` setting). Without a
file, `model.safetensors.index.json` is tried, then `model.safetensors`. The header costs a
HEAD and one or two Range requests; tensor bytes are fetched only for the tensors an audit
selects (`plan`, fetched by `prefetch.fetch_remote`), coalesced and in parallel, through the
ETag-keyed range cache. A file starting with the GGUF magic is read as GGUF (`remote_gguf`).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from urllib.parse import urljoin

from companion.audit.gguf_format import MAGIC
from companion.audit.remote_file import RemoteFile
from companion.audit.remote_http import Blob, RemoteOptions, client, limiter, probe
from companion.audit.safetensors import MAX_HEADER_BYTES, TensorInfo, parse_header
from companion.audit.source import Array, TensorFile, read_whole
from companion.convert import loads
from companion.errors import InputError

_HF = re.compile(r"^hf://([\w.-]+)/([\w.-]+)(?:@([\w./-]+?))?(?:/(.+))?$")
MAX_INDEX_BYTES = 50 << 20
MAX_SHARDS = 4096  # each costs a HEAD and a header read; the largest hub models have ~200


@dataclass(frozen=True)
class Location:
    """Where a remote checkpoint lives: candidate URLs in order, and the revision."""

    urls: tuple[str, ...]
    revision: str | None


def is_remote(value: str) -> bool:
    """Whether a checkpoint argument is a URL rather than a local path."""
    return value.startswith(("https://", "http://", "hf://"))


def locate(value: str, settings: RemoteOptions) -> Location:
    """Turn a URL or hf:// reference into the URLs to try."""
    if not value.startswith("hf://"):
        return Location((value,), None)
    m = _HF.match(value)
    if m is None:
        raise InputError(
            f"{value!r} is not an hf:// reference.", hint="write hf://ORG/NAME[@REVISION][/FILE]."
        )
    org, name, rev, file = m.groups()
    rev = rev or "main"
    base = f"{settings.hf_endpoint.rstrip('/')}/{org}/{name}/resolve/{rev}/"
    files = (file,) if file else ("model.safetensors.index.json", "model.safetensors")
    return Location(tuple(base + f for f in files), rev)


class RemoteSafetensors(RemoteFile):
    """One remote safetensors file: validated header, tensors fetched by range on demand."""

    def __init__(self, blob: Blob, revision: str | None, prefix: bytes | None = None) -> None:
        self._remote(blob, revision)
        prefix = prefix or blob.read(0, 8)
        (n,) = struct.unpack("<Q", prefix[:8])
        if n > MAX_HEADER_BYTES or 8 + n > blob.size:
            raise InputError(
                f"{blob.url}: header length {n} is impossible for a {blob.size}-byte file.",
                hint="the URL does not point at a safetensors (or GGUF) file.",
            )
        self.header = parse_header(prefix[:8] + blob.read(8, 8 + n), blob.size, blob.url)

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        """Tensor entries by name."""
        return self.header.tensors

    def span(self, info: TensorInfo) -> tuple[int, int]:
        """The tensor's bytes in the remote file."""
        return self.header.data_start + info.begin, self.header.data_start + info.end

    def read_into(self, info: TensorInfo, start: int, count: int, out: Array) -> Array:
        """Read `count` elements from element `start` (from the cache, fetching if needed)."""
        item = info.np_dtype.itemsize
        begin = self.span(info)[0] + start * item
        view = out[: count * item]
        if count:
            self.blob.read_into(begin, view.data)
        return view.view(info.np_dtype)

    def read(self, name: str, start: int = 0, count: int | None = None) -> Array:
        """Copy `count` elements (default: all) of a tensor, flattened."""
        return read_whole(self, name, start, count)


def _shards(blob: Blob) -> list[str]:
    """Shard URLs named by a remote model.safetensors.index.json."""
    if blob.size > MAX_INDEX_BYTES:
        raise InputError(f"{blob.url} is too large for an index.", hint="check the URL.")
    data = loads(blob.read(0, blob.size), blob.url, "check the index URL.")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise InputError(f"{blob.url} has no weight_map.", hint="check the index URL.")
    shards = sorted(set(weight_map.values()))
    if len(shards) > MAX_SHARDS:
        raise InputError(
            f"{blob.url} names {len(shards)} shards (at most {MAX_SHARDS}).",
            hint="check the index URL, or name one weights file: hf://ORG/NAME[@REVISION]/FILE.",
        )
    for shard in shards:
        if "/" in shard or shard in ("", ".", ".."):
            raise InputError(f"{blob.url} names shard {shard!r}.", hint="shards are file names.")
    return [urljoin(blob.url, s) for s in shards]


def _open_blob(blob: Blob, revision: str | None) -> TensorFile:
    """A remote weights file by its first bytes: GGUF magic, else safetensors."""
    if blob.size < 8:
        raise InputError(f"{blob.url} is only {blob.size} bytes.", hint="check the URL.")
    prefix = blob.read(0, 8)
    if prefix[:4] == MAGIC:
        from companion.audit.remote_gguf import RemoteGGUF

        return RemoteGGUF(blob, revision)
    return RemoteSafetensors(blob, revision, prefix)


def open_remote(value: str, settings: RemoteOptions) -> list[TensorFile]:
    """Open a remote checkpoint: its safetensors file, or every shard of its index."""
    loc = locate(value, settings)
    http, cap = client(settings), limiter(settings)
    last: InputError | None = None
    for url in loc.urls:
        try:
            blob = probe(url, settings, http, cap)
        except InputError as exc:
            if "404" in exc.message and len(loc.urls) > 1:
                last = exc
                continue
            raise
        if url.endswith(".json"):
            return [_open_blob(probe(s, settings, http, cap), loc.revision) for s in _shards(blob)]
        return [_open_blob(blob, loc.revision)]
    assert last is not None
    raise InputError(
        f"{value}: neither model.safetensors.index.json nor model.safetensors was found.",
        hint="name the weights file: hf://ORG/NAME[@REVISION]/FILE.",
    )
