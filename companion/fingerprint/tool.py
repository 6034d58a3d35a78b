"""The `fingerprint.compute` and `fingerprint.identify` tool declarations."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from companion.fingerprint.schemas import (
    SCHEME,
    FingerprintInput,
    FingerprintResult,
    IdentifyInput,
    IdentifyResult,
    ModelFingerprint,
)
from companion.manifest import Manifest
from companion.tools import ToolContext, tool

COMPUTE = "fingerprint.compute"
IDENTIFY = "fingerprint.identify"
_CACHE: dict[str, tuple[tuple[int, int, str], Any]] = {}
_LOCK = threading.Lock()


def manifest_for(fps: list[ModelFingerprint]) -> Manifest:
    """The manifest of a fingerprint run: every input's digest and the scheme."""
    files = {f.path: f for fp in fps for f in fp.files}
    return Manifest(
        tool=COMPUTE, parameters={"scheme": SCHEME}, inputs=[files[k] for k in sorted(files)]
    )


@tool(
    COMPUTE,
    description="Fingerprint checkpoints (streamed, a few KB each): inner products of "
    "residual-stream operators that hidden/unit/head permutations, attention rotations and "
    "norm rescales leave unchanged and fine-tuning or quantization move little. Recorded in "
    "the store for `identify`.",
    read_only=False,
    cli="fingerprint",
    positional=("paths",),
    record=True,
)
def compute_tool(args: FingerprintInput, ctx: ToolContext) -> FingerprintResult:
    """Tool entry point for `fingerprint.compute`."""
    from companion.digests import Digests
    from companion.fingerprint.engine import fingerprint_checkpoint, fingerprint_or_failure

    digests = Digests(ctx.settings.digest_path())
    if len(args.paths) == 1:  # a lone checkpoint's failure is the tool's, as the engine said it
        fps = [fingerprint_checkpoint(ctx.path(args.paths[0]), ctx.job(), digests)]
    else:
        fps = [fingerprint_or_failure(ctx.path(p), ctx.job(), digests) for p in args.paths]
    return FingerprintResult(fingerprints=fps, manifest=manifest_for(fps))


def stored_index(ctx: ToolContext) -> Any:
    """The index of the store's fingerprints, rebuilt only when the store changed."""
    from companion.fingerprint.index import SketchIndex
    from companion.store.db import settings_store
    from companion.store.fingerprints import index_rows, stamp

    key = str(ctx.settings.resolved_store_path())
    with settings_store(ctx.settings) as conn:
        now = stamp(conn, SCHEME)
        with _LOCK:
            hit = _CACHE.get(key)
        if hit is not None and hit[0] == now:
            return hit[1]
        index = SketchIndex.build(index_rows(conn, SCHEME))
    index.null()  # computed once per store state, not per query
    with _LOCK:
        _CACHE[key] = (now, index)
    return index


def _query(ctx: ToolContext, path: Path) -> ModelFingerprint:
    """The stored fingerprint of PATH's content, else a fresh one (not recorded: read-only)."""
    from companion.digests import Digests
    from companion.fingerprint.engine import checkpoint_digest, fingerprint_checkpoint
    from companion.store.db import settings_store
    from companion.store.fingerprints import by_digest

    digests = Digests(ctx.settings.digest_path())
    files, digest = checkpoint_digest(path, digests)
    with settings_store(ctx.settings) as conn:
        row = by_digest(conn, digest, SCHEME)
    if row is not None and row["status"] == "ok":
        fields = {k: v for k, v in row.items() if k in ModelFingerprint.model_fields}
        return ModelFingerprint.model_validate({**fields, "path": str(path), "files": files})
    return fingerprint_checkpoint(path, ctx.job(), digests)


def _rows(ctx: ToolContext) -> Any:
    """A reader of full fingerprint rows by id."""
    from companion.store.db import settings_store
    from companion.store.fingerprints import fingerprint_rows

    def read(ids: list[int]) -> dict[int, dict[str, Any]]:
        with settings_store(ctx.settings) as conn:
            return fingerprint_rows(conn, ids)

    return read


@tool(
    IDENTIFY,
    description="Which stored model is the likely parent of this checkpoint? Ranks the store's "
    "fingerprints by similarity with p-values against the store's own unrelated-pair null "
    "(related = calibrated decision); --confirm runs the full audit on related candidates.",
    read_only=True,
    cli="identify",
    positional=("path",),
)
def identify_tool(args: IdentifyInput, ctx: ToolContext) -> IdentifyResult:
    """Tool entry point for `fingerprint.identify`."""
    from companion.fingerprint.identify import identify

    path = ctx.path(args.path)
    query = _query(ctx, path)
    result = identify(query, stored_index(ctx), args.top, args.alpha, _rows(ctx))
    if args.confirm:
        result = _confirm(result, path, ctx)
    return result


def _confirm(result: IdentifyResult, path: Path, ctx: ToolContext) -> IdentifyResult:
    """Run `audit.compare` (candidate as A, the query as B) on each related candidate."""
    updated = []
    for c in result.candidates:
        if c.related:
            audit = ctx.run("audit.compare", {"a": c.path, "b": str(path)})
            c = c.model_copy(
                update={"audit_verdict": audit.facts().verdict, "audit_record": audit.record_id}
            )
        updated.append(c)
    return result.model_copy(update={"candidates": updated})
