"""`companion export ID`: a self-contained evidence bundle (manifest + full results)."""

from __future__ import annotations

import json
from typing import Any

from companion import __version__
from companion.store.backend import Conn
from companion.store.record import now_iso

BUNDLE_FORMAT = "companion-evidence-bundle/1"


def _models(conn: Conn, record_id: int) -> list[dict[str, Any]]:
    """The record's models with their files and ArchSpec."""
    models = []
    for m in conn.execute(
        "SELECT m.id, rm.side, m.name, m.path, m.content_sha256, m.arch_spec FROM record_models rm "
        "JOIN models m ON m.id = rm.model_id WHERE rm.record_id = ? ORDER BY rm.side",
        (record_id,),
    ):
        files = conn.execute(
            "SELECT a.path, a.size, a.sha256 FROM record_artifacts ra JOIN artifacts a "
            "ON a.id = ra.artifact_id WHERE ra.record_id = ? AND ra.model_id = ? ORDER BY a.path",
            (record_id, m["id"]),
        ).fetchall()
        models.append(
            {
                "side": m["side"],
                "name": m["name"],
                "path": m["path"],
                "content_sha256": m["content_sha256"],
                "arch_spec": json.loads(m["arch_spec"]) if m["arch_spec"] else None,
                "files": [dict(f) for f in files],
            }
        )
    return models


def build_bundle(conn: Conn, row: Any) -> dict[str, Any]:
    """Everything about one record, with no reference back to the store."""
    return {
        "format": BUNDLE_FORMAT,
        "id": row["uid"],
        "kind": row["kind"],
        "created": row["created"],
        "verdict": row["verdict"],
        "reasons": json.loads(row["reasons"]),
        "tool": {"name": row["kind"], "version": row["tool_version"]},
        "arguments": json.loads(row["args"]),
        "manifest": json.loads(row["manifest"]) if row["manifest"] else None,
        "models": _models(conn, row["id"]),
        "result": json.loads(row["result"]),
        "how_to_verify": (
            "Check each file in manifest.inputs against its sha256, then run "
            "`companion verify THIS_FILE.json`: it re-hashes the inputs, re-runs "
            "manifest.tool with manifest.parameters and compares every number in `result`."
        ),
        "exported": now_iso(),
        "exported_by": f"companion {__version__}",
    }
