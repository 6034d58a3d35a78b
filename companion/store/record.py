"""Writing one tool run into the store: one short transaction, all of it or nothing."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from companion.store.backend import Backend, Conn
from companion.store.db import as_backend, write_transaction
from companion.store.migrations import METRIC_COLUMNS
from companion.tools import Facts, Tool, ToolResult

# File stems that say nothing about which model they belong to: name the model after the folder.
_GENERIC_STEMS = ("model", "pytorch_model", "config", "tokenizer", "consolidated", "adapter")


def new_uid() -> str:
    """A short random record id (12 hex digits) that users type after `verify`/`export`."""
    return uuid.uuid4().hex[:12]


def now_iso() -> str:
    """The current UTC time, as a sortable ISO string with microseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class ModelGroup:
    """The input files one argument (e.g. checkpoint A) pointed at."""

    side: str
    path: str
    files: list[dict[str, Any]]

    @property
    def content_sha256(self) -> str:
        """Identity by content: the hash of the sorted file hashes (independent of paths)."""
        joined = "\n".join(sorted(str(f["sha256"]) for f in self.files))
        return hashlib.sha256(joined.encode()).hexdigest()

    @property
    def name(self) -> str:
        """A readable model name: the folder or file the user pointed at."""
        p = Path(self.path)
        if p.suffix and (p.stem.startswith(_GENERIC_STEMS) or not p.stem):
            return p.parent.name or p.name
        return p.stem if p.suffix else p.name


def _plain(value: Any) -> Any:
    """JSON-ready form of a value (pydantic models, enums)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Enum):
        return value.value
    return value


def arg_paths(args: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(side, path string) for every string argument, list items numbered."""
    for field, value in args.items():
        if isinstance(value, str) and value.strip():
            yield field, value
        elif isinstance(value, list):
            items = [v for v in value if isinstance(v, str) and v.strip()]
            for i, v in enumerate(items):
                yield (field if len(items) == 1 else f"{field}[{i}]"), v


def _matches(arg: str, file_path: str) -> bool:
    """Whether an input file is the argument's path or lies under it."""
    p = Path(arg).expanduser()
    target = Path(file_path)
    if p.is_absolute() or p.exists():
        base = p.resolve()
        return target == base or target.is_relative_to(base)
    # A relative path resolved against a workspace root we do not know: match by suffix.
    parts = p.parts
    return len(parts) > 0 and (
        target.parts[-len(parts) :] == parts or _contains(target.parts, parts)
    )


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    """Whether `needle` occurs as a contiguous run of path parts in `haystack`."""
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def model_groups(args: dict[str, Any], inputs: list[dict[str, Any]]) -> list[ModelGroup]:
    """Group manifest inputs by the argument that named them; leftovers by folder."""
    groups: list[ModelGroup] = []
    claimed: set[str] = set()
    for side, arg in arg_paths(args):
        files = [f for f in inputs if f["path"] not in claimed and _matches(arg, f["path"])]
        if files:
            claimed.update(f["path"] for f in files)
            common = Path(files[0]["path"]) if len(files) == 1 else _common_dir(files)
            groups.append(ModelGroup(side=side, path=str(common), files=files))
    by_dir: dict[str, list[dict[str, Any]]] = {}
    for f in inputs:
        if f["path"] not in claimed:
            by_dir.setdefault(str(Path(f["path"]).parent), []).append(f)
    for i, (folder, files) in enumerate(sorted(by_dir.items())):
        path = files[0]["path"] if len(files) == 1 else folder
        groups.append(ModelGroup(side=f"input[{i}]", path=path, files=files))
    return groups


def _common_dir(files: list[dict[str, Any]]) -> Path:
    """The deepest folder holding every file."""
    parents = [Path(f["path"]).parent for f in files]
    common = parents[0]
    while not all(p == common or p.is_relative_to(common) for p in parents):
        common = common.parent
    return common


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys ({'metrics': {'z': 1}} -> {'metrics.z': 1})."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, float) and not math.isfinite(value):
            out[name] = None  # keeps `extra` valid JSON for json_extract
        else:
            out[name] = value
    return out


def _number(value: Any) -> float | None:
    """A finite float, or None (SQLite has no NaN; JSON null round-trips)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _metric_key(flat: dict[str, Any], metric: str) -> str | None:
    """Where a metric lives in a row: top level, else the shallowest `<...>.metric`."""
    if metric in flat:
        return metric
    nested = [k for k in flat if k.rsplit(".", 1)[-1] == metric]
    return min(nested, key=lambda k: (k.count("."), k)) if nested else None


def tensor_row(record_id: int, row: Any) -> tuple[Any, ...]:
    """One per-tensor result as a database row: names, role, layer, metric columns, extra."""
    data = _plain(row) if not isinstance(row, dict) else row
    flat = _flatten(data)
    name_a = flat.pop("name_a", None) or flat.pop("name", None)
    name_b = flat.pop("name_b", None) or name_a
    role = flat.pop("role", None)
    layer = flat.pop("layer", None)
    metrics = []
    for metric in METRIC_COLUMNS:
        key = _metric_key(flat, metric)
        metrics.append(_number(flat.pop(key)) if key is not None else None)
    layer_value = layer if isinstance(layer, int) and not isinstance(layer, bool) else None
    return (
        record_id,
        name_a,
        name_b,
        role,
        layer_value,
        *metrics,
        json.dumps(flat, separators=(",", ":"), default=str),
    )


def tensor_rows(record_id: int, rows: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    """Database rows for a result's per-tensor list (a generator: executemany streams it)."""
    for row in rows:
        yield tensor_row(record_id, row)


def _headline(data: dict[str, Any]) -> str:
    """The result's top-level scalars (numbers, short strings) for quick reading."""
    keep = {
        k: v
        for k, v in data.items()
        if k != "record_id"
        and (isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) < 200))
    }
    return json.dumps(keep, separators=(",", ":"))


def _upsert_model(conn: Conn, group: ModelGroup, spec: str | None, created: str) -> int:
    """The model row for a group of files (created on first sight; ArchSpec filled in later)."""
    row = conn.execute(
        "INSERT INTO models(content_sha256, name, path, arch_spec, first_seen) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(content_sha256) DO UPDATE SET "
        "arch_spec = COALESCE(excluded.arch_spec, models.arch_spec) RETURNING id",
        (group.content_sha256, group.name, group.path, spec, created),
    ).fetchone()
    return int(row[0])


def _upsert_artifact(conn: Conn, f: dict[str, Any]) -> int:
    """The artifact row for one file (path + content)."""
    row = conn.execute(
        "INSERT INTO artifacts(path, sha256, size) VALUES (?, ?, ?) "
        "ON CONFLICT(path, sha256) DO UPDATE SET size = excluded.size RETURNING id",
        (f["path"], f["sha256"], int(f["size"])),
    ).fetchone()
    return int(row[0])


def write_record(
    conn: Conn,
    kind: str,
    args: dict[str, Any],
    result: ToolResult,
    per_tensor: Iterable[Any] | None = None,
    uid: str | None = None,
) -> str:
    """Insert one run (record, models, artifacts, kind tables, per-tensor rows) atomically.

    Given a `uid` that is already stored, nothing is written: a retry after a connection lost
    around COMMIT does not record the run twice.
    """
    if uid is not None and conn.execute("SELECT 1 FROM records WHERE uid = ?", (uid,)).fetchone():
        return uid
    uid, created = uid or new_uid(), now_iso()
    facts = result.facts()
    data = json.loads(result.model_dump_json())  # NaN/inf become null, as in any JSON export
    data["record_id"] = uid  # the stored result reads as the caller will see it
    verdict = None if facts.verdict is None else str(facts.verdict)
    manifest = data.get("manifest") if isinstance(data.get("manifest"), dict) else None
    inputs = list(manifest.get("inputs") or []) if manifest else []
    with write_transaction(conn):
        record_id = int(
            conn.execute(
                "INSERT INTO records(uid, kind, created, verdict, reasons, args, result, "
                "manifest, tool_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    uid,
                    kind,
                    created,
                    verdict,
                    json.dumps([_plain(r) for r in facts.reasons], default=str),
                    json.dumps(args, default=str),
                    json.dumps(data, separators=(",", ":")),
                    None if manifest is None else json.dumps(manifest),
                    manifest.get("tool_version") if manifest else None,
                ),
            ).fetchone()[0]
        )
        model_ids = _write_models(conn, record_id, args, inputs, facts, created)
        rows = facts.rows if per_tensor is None else per_tensor
        _write_table(conn, facts, record_id, model_ids, verdict, data, rows)
    return uid


def _write_table(
    conn: Conn,
    facts: Facts,
    record_id: int,
    model_ids: list[int],
    verdict: str | None,
    data: dict[str, Any],
    rows: Iterable[Any],
) -> None:
    """The row of the result's own table (audits, evidence, tokenizer comparisons)."""
    a = model_ids[0] if model_ids else None
    b = model_ids[1] if len(model_ids) > 1 else None
    if facts.table == "audit":
        written = [0]

        def counted() -> Iterator[tuple[Any, ...]]:
            for row in tensor_rows(record_id, rows):
                written[0] += 1
                yield row

        conn.executemany(
            "INSERT INTO per_tensor(record_id, name_a, name_b, role, layer, "
            + ", ".join(METRIC_COLUMNS)
            + ", extra) VALUES ("
            + ", ".join("?" * (6 + len(METRIC_COLUMNS)))
            + ")",
            counted(),
        )
        conn.execute(
            "INSERT INTO audits(record_id, model_a, model_b, verdict, n_tensors) "
            "VALUES (?, ?, ?, ?, ?)",
            (record_id, a, b, verdict, written[0]),
        )
    elif facts.table == "evidence":
        conn.execute(
            "INSERT INTO evidence_summaries(record_id, model_id, verdict, headline) "
            "VALUES (?, ?, ?, ?)",
            (record_id, a, verdict, _headline(data)),
        )
    elif facts.table == "tokenizer":
        conn.execute(
            "INSERT INTO tokenizer_comparisons(record_id, model_a, model_b, verdict, "
            "headline) VALUES (?, ?, ?, ?, ?)",
            (record_id, a, b, verdict, _headline(data)),
        )
    elif facts.table == "fingerprint":
        from companion.store.fingerprints import write_fingerprints

        write_fingerprints(conn, record_id, rows)


def _write_models(
    conn: Conn,
    record_id: int,
    args: dict[str, Any],
    inputs: list[dict[str, Any]],
    facts: Facts,
    created: str,
) -> list[int]:
    """Models and artifacts of one record, linked to it; returns model ids in argument order."""
    ids: list[int] = []
    for index, group in enumerate(model_groups(args, inputs)):
        spec = facts.specs[index] if index < len(facts.specs) else None
        model_id = _upsert_model(
            conn, group, None if spec is None else spec.model_dump_json(), created
        )
        ids.append(model_id)
        conn.execute(
            "INSERT INTO record_models(record_id, model_id, side) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (record_id, model_id, group.side),
        )
        for f in group.files:
            conn.execute(
                "INSERT INTO record_artifacts(record_id, artifact_id, model_id) "
                "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (record_id, _upsert_artifact(conn, f), model_id),
            )
    return ids


class StoreRecorder:
    """The recorder `run_tool` calls after a recordable tool succeeds."""

    def __init__(self, store: Backend | Path | str) -> None:
        self.store = store
        self._backend: Backend | None = None

    def __call__(self, tool: Tool, args: BaseModel, result: ToolResult) -> str:
        """Write one record and return its id (a retried write keeps the same id)."""
        if self._backend is None:
            self._backend = as_backend(self.store)  # opened lazily: psycopg loads on first use
        uid, payload = new_uid(), args.model_dump(mode="json")
        return self._backend.run(
            lambda conn: write_record(conn, tool.name, payload, result, uid=uid)
        )
