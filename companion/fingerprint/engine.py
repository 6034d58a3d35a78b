"""Fingerprint one checkpoint: stream its layers into invariant features and a sketch."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from companion.audit.checkpoint import Checkpoint, open_checkpoint
from companion.digests import Digests
from companion.errors import CompanionError
from companion.fingerprint import features as F
from companion.fingerprint.operators import (
    Layout,
    hidden_size,
    layout,
    norm_gains,
    stream_layers,
    top_operators,
)
from companion.fingerprint.schemas import ModelFingerprint
from companion.jobs import Job
from companion.manifest import InputFile, sha256_file

Array = np.ndarray[Any, Any]


def file_digests(paths: list[Path], digests: Digests) -> list[InputFile]:
    """sha256 of every input file, reusing the stat-keyed digest cache."""
    out = []
    for p in sorted({q.resolve() for q in paths}):
        st = os.stat(p)
        cached = digests.known(p, st)
        digest = cached or ""
        if cached is None:
            started = time.time_ns()
            digest = sha256_file(p)
            digests.remember(p, st, digest, started)
        out.append(
            InputFile(
                path=str(p),
                size=st.st_size,
                sha256=digest,
                sha256_from="cache" if cached else "read",
            )
        )
    return out


def content_digest(files: list[InputFile]) -> str:
    """A model's identity by content: the hash of its sorted file digests."""
    return hashlib.sha256("\n".join(sorted(f.sha256 for f in files)).encode()).hexdigest()


def checkpoint_digest(path: Path, digests: Digests) -> tuple[list[InputFile], str]:
    """A checkpoint's input file digests and content digest, without reading its tensors."""
    ckpt = open_checkpoint(path)
    try:
        files = file_digests(ckpt.input_files, digests)
    finally:
        ckpt.close()
    return files, content_digest(files)


def _features(ckpt: Checkpoint, lay: Layout, hidden: int, job: Job) -> tuple[dict[str, Any], Array]:
    """Stream the layers; keep only the previous layer's operators beside the current one."""
    top = {
        k: c for k, m in top_operators(ckpt, lay, hidden).items() if (c := F.centred(m)) is not None
    }
    top_names = sorted(top)
    specs = F.top_specs(top_names)
    values = F.evaluate(specs, top)
    previous: dict[str, Array] = {}
    kinds: list[list[Any]] = []
    for layer, ops in stream_layers(ckpt, lay, hidden, job):
        current = {
            F.op_name(layer, k): c for k, m in ops.items() if (c := F.centred(m)) is not None
        }
        layer_specs = F.layer_specs(list(current), list(previous), top_names)
        values += F.evaluate(layer_specs, {**top, **previous, **current})
        specs += layer_specs
        kinds.append([layer, sorted(k.rsplit(".", 1)[1] for k in current)])
        previous = current
    return {"layers": kinds, "top": top_names}, np.array(values, dtype=np.float32)


def fingerprint_checkpoint(
    path: Path, job: Job, digests: Digests | None = None
) -> ModelFingerprint:
    """The fingerprint of one checkpoint (raises CompanionError on unreadable input)."""
    started = time.perf_counter()
    ckpt = open_checkpoint(path)
    try:
        files = file_digests(ckpt.input_files, digests or Digests(None))
        lay = layout(ckpt)
        hidden = hidden_size(ckpt, lay)
        if hidden is None:
            raise CompanionError(
                f"{path}: no embedding or projection tensors to fingerprint.",
                hint="fingerprints need a transformer checkpoint with named layers.",
            )
        shape, values = _features(ckpt, lay, hidden, job)
        keys = [s[0] for s in F.all_specs([(int(a), b) for a, b in shape["layers"]], shape["top"])]
        return ModelFingerprint(
            path=str(path),
            content_sha256=content_digest(files),
            hidden=hidden,
            layers=len(shape["layers"]),
            nbytes=ckpt.nbytes,
            layout=shape,
            values=F.encode(values),
            sketch=F.encode(F.sketch(dict(zip(keys, values.tolist(), strict=True)))),
            gains=F.gain_quantiles(norm_gains(ckpt, lay)),
            files=files,
            seconds=round(time.perf_counter() - started, 4),
        )
    finally:
        ckpt.close()


def fingerprint_or_failure(
    path: Path, job: Job, digests: Digests | None = None
) -> ModelFingerprint:
    """A fingerprint, or a failed entry carrying the error (the caller goes on)."""
    try:
        return fingerprint_checkpoint(path, job, digests)
    except CompanionError as exc:
        return ModelFingerprint(path=str(path), status="failed", error=str(exc))


def feature_map(fp: ModelFingerprint) -> dict[str, float]:
    """A stored fingerprint's features by key (regenerated from its layout)."""
    if not fp.values:
        return {}
    layers = [(int(a), list(b)) for a, b in fp.layout.get("layers", [])]
    keys = [s[0] for s in F.all_specs(layers, list(fp.layout.get("top", [])))]
    vals = F.decode(fp.values).tolist()
    return dict(zip(keys, vals, strict=True))
