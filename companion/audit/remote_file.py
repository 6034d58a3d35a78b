"""What every remote tensor file shares: its blob and revision, the plan of ranges still to
fetch (coalesced), and the manifest entry (URL, revision, ETag, ranges read, their sha256)."""

from __future__ import annotations

import re
from pathlib import Path

from companion.audit.remote_http import Blob
from companion.audit.safetensors import TensorInfo
from companion.manifest import InputFile

_MAX_REQUEST = 256 << 20  # a coalesced request never grows beyond this


def merged(ranges: list[tuple[int, int]], gap: int = 0) -> list[tuple[int, int]]:
    """Sorted ranges with overlaps (and holes up to `gap` bytes) merged, each under 256 MB."""
    out: list[list[int]] = []
    for a, b in sorted(r for r in ranges if r[1] > r[0]):
        if out and a - out[-1][1] <= gap and b - out[-1][0] <= _MAX_REQUEST:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


class RemoteFile:
    """What every remote tensor file shares: its blob, revision, range plan and manifest entry."""

    local = False
    blob: Blob
    revision: str | None
    path: Path

    def _remote(self, blob: Blob, revision: str | None) -> None:
        """Keep the blob and revision; a /remote/... path stands for the URL."""
        self.blob, self.revision = blob, revision
        self.path = Path("/remote") / re.sub(r"^\w+://", "", blob.url)

    def span(self, info: TensorInfo) -> tuple[int, int]:
        """The tensor's bytes in the remote file."""
        raise NotImplementedError

    def pooled(self, info: TensorInfo) -> bool:
        """Remote bytes never pass through the local reader's pool."""
        return False

    def plan(self, infos: list[TensorInfo], gap: int) -> list[tuple[int, int]]:
        """The coalesced ranges of these tensors that the cache still lacks."""
        wanted = merged([self.span(i) for i in infos], gap)
        return [g for a, b in wanted for g in self.blob.missing(a, b)]

    def prefetch(self, info: TensorInfo, start: int = 0, count: int | None = None) -> None:
        """Nothing: the audit fetched what it needs beforehand (`prefetch.fetch_remote`)."""

    def close(self) -> None:
        """Nothing to release (the HTTP client belongs to the checkpoint)."""

    def manifest_entry(self) -> InputFile:
        """The URL, revision, ETag, exact ranges read and their sha256, for the manifest."""
        ranges = merged(self.blob.ranges)
        return InputFile(
            path=self.blob.url,
            size=self.blob.size,
            sha256=self.blob.etag,
            sha256_from="remote",
            revision=self.revision,
            ranges=[[a, b] for a, b in ranges],
            ranges_sha256=self.blob.cache_sha256(ranges),
        )
