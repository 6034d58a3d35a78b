"""Fingerprint rows: written with a `fingerprint.compute` record, read by identify and fleet.

One row per (content digest, scheme): fingerprinting the same model again replaces its row,
so a retried or repeated run never duplicates it. The SQL is portable (TEXT, INTEGER and
base64 or JSON in TEXT), like every other store table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from companion.store.backend import Conn

_COLUMNS = (
    "record_id, model_id, content_sha256, scheme, path, status, error, hidden, layers, "
    "nbytes, sketch, data, created"
)
_DATA_FIELDS = ("layout", "values", "gains", "seconds")


def _content_key(row: dict[str, Any]) -> str:
    """The row's identity: its content digest, or its path when it could not be read."""
    digest = str(row.get("content_sha256") or "")
    return digest or "path:" + hashlib.sha256(str(row["path"]).encode()).hexdigest()


def _model_id(conn: Conn, record_id: int, row: dict[str, Any]) -> int | None:
    """The model the record linked to this fingerprint's first input file."""
    files = row.get("files") or []
    if not files:
        return None
    found = conn.execute(
        "SELECT ra.model_id FROM record_artifacts ra JOIN artifacts a ON a.id = ra.artifact_id "
        "WHERE ra.record_id = ? AND a.path = ? LIMIT 1",
        (record_id, files[0]["path"]),
    ).fetchone()
    return None if found is None or found[0] is None else int(found[0])


def write_fingerprints(conn: Conn, record_id: int, rows: Iterable[dict[str, Any]]) -> None:
    """Upsert the fingerprint rows of one record (inside the record's transaction)."""
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for row in rows:
        data = json.dumps({k: row.get(k) for k in _DATA_FIELDS}, separators=(",", ":"))
        values = (
            record_id,
            _model_id(conn, record_id, row),
            _content_key(row),
            row["scheme"],
            row["path"],
            row["status"],
            row.get("error"),
            row.get("hidden"),
            row.get("layers"),
            row.get("nbytes"),
            row.get("sketch") or None,
            data,
            created,
        )
        conn.execute(
            f"INSERT INTO fingerprints({_COLUMNS}) VALUES ({', '.join('?' * 13)}) "
            "ON CONFLICT(content_sha256, scheme) DO UPDATE SET record_id = excluded.record_id, "
            "model_id = excluded.model_id, path = excluded.path, status = excluded.status, "
            "error = excluded.error, hidden = excluded.hidden, layers = excluded.layers, "
            "nbytes = excluded.nbytes, sketch = excluded.sketch, data = excluded.data, "
            "created = excluded.created",
            values,
        )


def index_rows(conn: Conn, scheme: str) -> list[tuple[int, int | None, str, str, str]]:
    """(id, model_id, path, content digest, sketch) of every good fingerprint of a scheme."""
    return [
        (int(r[0]), None if r[1] is None else int(r[1]), str(r[2]), str(r[3]), str(r[4]))
        for r in conn.execute(
            "SELECT id, model_id, path, content_sha256, sketch FROM fingerprints "
            "WHERE status = 'ok' AND scheme = ? AND sketch IS NOT NULL ORDER BY id",
            (scheme,),
        )
    ]


def stamp(conn: Conn, scheme: str) -> tuple[int, int, str]:
    """(count, largest id, latest write time) of good fingerprints: an index cache key."""
    row = conn.execute(
        "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(MAX(created), '') FROM fingerprints "
        "WHERE status = 'ok' AND scheme = ?",
        (scheme,),
    ).fetchone()
    return int(row[0]), int(row[1]), str(row[2])


def fingerprint_rows(conn: Conn, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Full rows (with decoded data) by id."""
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    out: dict[int, dict[str, Any]] = {}
    for r in conn.execute(
        f"SELECT id, model_id, content_sha256, scheme, path, status, error, hidden, layers, "
        f"nbytes, sketch, data FROM fingerprints WHERE id IN ({marks})",
        ids,
    ):
        out[int(r[0])] = _row(r)
    return out


def _row(r: Any) -> dict[str, Any]:
    """A fingerprint row as the fields of a `ModelFingerprint` (plus id and model_id)."""
    data = json.loads(r[11] or "{}")
    return {
        "id": int(r[0]),
        "model_id": r[1],
        "content_sha256": r[2],
        "scheme": r[3],
        "path": r[4],
        "status": r[5],
        "error": r[6],
        "hidden": r[7],
        "layers": r[8] or 0,
        "nbytes": r[9] or 0,
        "sketch": r[10] or "",
        **{k: v for k, v in data.items() if v is not None},
    }


def by_digest(conn: Conn, digest: str, scheme: str) -> dict[str, Any] | None:
    """The stored fingerprint of a content digest, if any."""
    r = conn.execute(
        "SELECT id, model_id, content_sha256, scheme, path, status, error, hidden, layers, "
        "nbytes, sketch, data FROM fingerprints WHERE content_sha256 = ? AND scheme = ?",
        (digest, scheme),
    ).fetchone()
    return None if r is None else _row(r)


def status_by_path(conn: Conn, scheme: str) -> dict[str, str]:
    """The latest status of every fingerprinted path (for resume and reports)."""
    return {
        str(r[0]): str(r[1])
        for r in conn.execute(
            "SELECT path, status FROM fingerprints WHERE scheme = ? ORDER BY created", (scheme,)
        )
    }


def known_digests(conn: Conn, scheme: str) -> set[str]:
    """Content digests already fingerprinted successfully (fleet resume skips them)."""
    return {
        str(r[0])
        for r in conn.execute(
            "SELECT content_sha256 FROM fingerprints WHERE status = 'ok' AND scheme = ?",
            (scheme,),
        )
    }
