"""`audit.query`: filters become parameterised SQL; user text never becomes SQL text."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from companion.errors import InputError
from companion.store.backend import Conn, dialect_of
from companion.store.dialect import SQLITE, Dialect
from companion.store.migrations import METRIC_COLUMNS
from companion.store.schemas import ModelRef, QueryInput, QueryResult, RecordSummary, TensorHit

TOTAL_CAP = 10_000
_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "=", "==": "=", "!=": "!="}
_THRESHOLD = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_.]{0,80})\s*(<=|>=|==|!=|=|<|>)\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
_SHA = re.compile(r"^[0-9a-f]{6,64}$")
_RELATIVE = re.compile(r"^(\d{1,5})([dhm])$")
_ORDER = {
    "newest": "r.created DESC, r.id DESC",
    "oldest": "r.created ASC, r.id ASC",
    "kind": "r.kind ASC, r.created DESC, r.id DESC",
    "verdict": "r.verdict ASC NULLS FIRST, r.created DESC, r.id DESC",
}


def parse_threshold(text: str) -> tuple[str, str, float, bool]:
    """`pearson>0.5` -> (metric, SQL operator, value, is_column); anything else is refused."""
    m = _THRESHOLD.match(text)
    if not m:
        raise InputError(
            f"Cannot read the metric threshold {text!r}.",
            hint="write METRIC OP NUMBER, e.g. pearson>0.5 or z<=-3 "
            f"(metrics: {', '.join(METRIC_COLUMNS)}).",
        )
    name, op, number = m.group(1), _OPS[m.group(2)], float(m.group(3))
    return name, op, number, name in METRIC_COLUMNS


def parse_time(text: str, *, end: bool) -> str:
    """An ISO date/time (or `7d` ago) as the store's UTC timestamp format."""
    raw = text.strip()
    if rel := _RELATIVE.match(raw):
        unit = {"d": "days", "h": "hours", "m": "minutes"}[rel.group(2)]
        moment = datetime.now(UTC) - timedelta(**{unit: int(rel.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                f"Cannot read the date {text!r}.",
                hint="use an ISO date such as 2026-01-31 or 2026-01-31T12:00, or 7d for a week.",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if end and len(raw) == 10:  # a bare date: include the whole day
            moment += timedelta(days=1)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _model_clause(spec: str, roots: list[Path]) -> tuple[str, list[Any]]:
    """Records involving a model given by name, path or content/file sha256 prefix."""
    where_m, where_a = ["m.name = ?", "m.path = ?"], ["a.path = ?"]
    params_m: list[Any] = [spec, spec]
    params_a: list[Any] = [spec]
    if "/" in spec or spec.startswith(("~", ".")):
        p = Path(spec).expanduser()
        if not p.is_absolute():
            p = (roots[0] if roots else Path.cwd()) / p
        full = str(p.resolve())
        where_m.append("m.path = ?")
        params_m.append(full)
        # Files under the folder: a range on the path index ('/' + 1 == '0').
        where_a += ["a.path = ?", "(a.path > ? AND a.path < ?)"]
        params_a += [full, full + "/", full + "0"]
    if _SHA.match(spec.lower()):
        low = spec.lower()
        where_m.append("(m.content_sha256 >= ? AND m.content_sha256 < ?)")
        params_m += [low, low + "g"]
        where_a.append("(a.sha256 >= ? AND a.sha256 < ?)")
        params_a += [low, low + "g"]
    sql = (
        "r.id IN (SELECT rm.record_id FROM record_models rm JOIN models m ON m.id = rm.model_id "
        f"WHERE {' OR '.join(where_m)} UNION SELECT ra.record_id FROM record_artifacts ra "
        f"JOIN artifacts a ON a.id = ra.artifact_id WHERE {' OR '.join(where_a)})"
    )
    return sql, params_m + params_a


def _expand_roles(roles: list[str]) -> list[str]:
    """Audit group names (attn, mlp...) stand for their roles; other names are kept as given."""
    from companion.audit.alignment import GROUPS

    out: list[str] = []
    for role in roles:
        for r in (role, *GROUPS.get(role, ())):
            if r not in out:
                out.append(r)
    return out


def tensor_conditions(args: QueryInput, dialect: Dialect = SQLITE) -> tuple[list[str], list[Any]]:
    """SQL conditions on `per_tensor t` for the tensor glob, roles and thresholds."""
    conds: list[str] = []
    params: list[Any] = []
    if args.tensor:
        globs = [dialect.glob(column, args.tensor) for column in ("t.name_a", "t.name_b")]
        conds.append("(" + " OR ".join(sql for sql, _ in globs) + ")")
        params += [p for _, ps in globs for p in ps]
    if args.role:
        roles = _expand_roles(args.role)
        conds.append(f"t.role IN ({', '.join('?' * len(roles))})")
        params += roles
    for text in args.where:
        name, op, value, is_column = parse_threshold(text)
        if is_column:
            column = METRIC_COLUMNS[METRIC_COLUMNS.index(name)]  # the whitelist's own string
            conds.append(f"t.{column} {op} ?")
        else:
            sql, key_params = dialect.json_number("t.extra", name)
            conds.append(f"{sql} {op} ?")
            params += key_params
        params.append(value)
    return conds, params


def record_conditions(
    args: QueryInput, roots: list[Path], dialect: Dialect = SQLITE
) -> tuple[list[str], list[Any]]:
    """SQL conditions on `records r` for every filter."""
    conds: list[str] = []
    params: list[Any] = []
    if args.kind:
        globs = [dialect.glob("r.kind", k) for k in args.kind]
        conds.append("(" + " OR ".join(sql for sql, _ in globs) + ")")
        params += [p for _, ps in globs for p in ps]
    if args.verdict:
        conds.append(f"r.verdict IN ({', '.join('?' * len(args.verdict))})")
        params += args.verdict
    if args.since:
        conds.append("r.created >= ?")
        params.append(parse_time(args.since, end=False))
    if args.until:
        conds.append("r.created < ?")
        params.append(parse_time(args.until, end=True))
    if args.model:
        parts = [_model_clause(m, roots) for m in args.model]
        conds.append("(" + " OR ".join(sql for sql, _ in parts) + ")")
        params += [p for _, ps in parts for p in ps]
    for spec in args.pair:
        sql, ps = _model_clause(spec, roots)
        conds.append(sql)
        params += ps
    t_conds, t_params = tensor_conditions(args, dialect)
    if t_conds:
        conds.append(
            f"r.id IN (SELECT t.record_id FROM per_tensor t WHERE {' AND '.join(t_conds)})"
        )
        params += t_params
    return conds, params


def confined_condition(roots: list[Path]) -> tuple[str, list[Any]]:
    """Records whose every input file lies under the roots (and that have at least one)."""
    inside: list[str] = []
    params: list[Any] = []
    for root in roots:
        full = os.path.realpath(root)
        inside.append("(a.path = ? OR (a.path > ? AND a.path < ?))")
        params += [full, full + "/", full + "0"]
    test = " OR ".join(inside) or "1 = 0"
    files = "SELECT ra.record_id FROM record_artifacts ra JOIN artifacts a ON a.id = ra.artifact_id"
    sql = f"(r.id IN ({files} WHERE {test}) AND r.id NOT IN ({files} WHERE NOT ({test})))"
    return sql, params + params


def run_query(
    conn: Conn, args: QueryInput, roots: list[Path], store: str, confine: bool = False
) -> QueryResult:
    """One page of matching records (when confined, only the workspace's own records)."""
    dialect = dialect_of(conn)
    conds, params = record_conditions(args, roots, dialect)
    if confine:
        sql, ps = confined_condition(roots)
        conds.append(sql)
        params += ps
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    (total,) = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM records r {where} LIMIT ?) AS page",
        [*params, TOTAL_CAP + 1],
    ).fetchone()
    rows = conn.execute(
        "SELECT r.id, r.uid, r.kind, r.created, r.verdict, r.reasons, r.tool_version, "
        "(SELECT n_tensors FROM audits au WHERE au.record_id = r.id) AS n_tensors "
        f"FROM records r {where} ORDER BY {_ORDER[args.sort]} LIMIT ? OFFSET ?",
        [*params, args.limit, args.offset],
    ).fetchall()
    models = _models_of(conn, [r["id"] for r in rows])
    t_conds, t_params = tensor_conditions(args, dialect)
    hits = _tensors_of(conn, [r["id"] for r in rows], t_conds, t_params, args.tensor_limit)
    records = []
    for r in rows:
        summary = RecordSummary(
            id=r["uid"],
            kind=r["kind"],
            created=r["created"],
            verdict=r["verdict"],
            reasons=json.loads(r["reasons"]),
            models=models.get(r["id"], []),
            tool_version=r["tool_version"],
            n_tensors=r["n_tensors"],
        )
        if t_conds:
            summary.tensor_matches, summary.tensors = hits.get(r["id"], (0, []))
        records.append(summary)
    return QueryResult(
        records=records,
        total=min(total, TOTAL_CAP),
        total_capped=total > TOTAL_CAP,
        offset=args.offset,
        limit=args.limit,
        format=args.format,
        store=store,
    )


def _models_of(conn: Conn, ids: list[int]) -> dict[int, list[ModelRef]]:
    """Models of each record, in argument order."""
    out: dict[int, list[ModelRef]] = {}
    if not ids:
        return out
    rows = conn.execute(
        "SELECT rm.record_id, rm.side, m.name, m.path, m.content_sha256 FROM record_models rm "
        f"JOIN models m ON m.id = rm.model_id WHERE rm.record_id IN ({', '.join('?' * len(ids))}) "
        "ORDER BY rm.record_id, rm.side",
        ids,
    ).fetchall()
    for row in rows:
        out.setdefault(row[0], []).append(
            ModelRef(side=row[1], name=row[2], path=row[3], content_sha256=row[4])
        )
    return out


def _tensors_of(
    conn: Conn, ids: list[int], conds: list[str], params: list[Any], limit: int
) -> dict[int, tuple[int, list[TensorHit]]]:
    """Per record of the page: how many tensors match, and the first `limit` of them."""
    out: dict[int, tuple[int, list[TensorHit]]] = {}
    if not ids or not conds:
        return out
    # One query for the whole page: window functions number and count each record's hits.
    where = " AND ".join([f"t.record_id IN ({', '.join('?' * len(ids))})", *conds])
    rows = conn.execute(
        "SELECT * FROM (SELECT t.*, row_number() OVER (PARTITION BY t.record_id ORDER BY t.id) "
        "AS rn, count(*) OVER (PARTITION BY t.record_id) AS hits FROM per_tensor t "
        f"WHERE {where}) AS hit WHERE rn <= ? ORDER BY record_id, id",
        [*ids, *params, max(limit, 1)],
    ).fetchall()
    for row in rows:
        _, listed = out.setdefault(row["record_id"], (int(row["hits"]), []))
        if len(listed) < limit:
            listed.append(
                TensorHit(
                    name_a=row["name_a"],
                    name_b=row["name_b"],
                    role=row["role"],
                    layer=row["layer"],
                    extra=json.loads(row["extra"]),
                    **{m: row[m] for m in METRIC_COLUMNS},
                )
            )
    return out


def find_record(conn: Conn, ref: str) -> Any:
    """The record with this id (or a unique prefix of at least 4 characters)."""
    key = ref.strip().lower()
    row = conn.execute("SELECT * FROM records WHERE uid = ?", (key,)).fetchone()
    if row is not None:
        return row
    rows = []
    if len(key) >= 4 and re.fullmatch(r"[0-9a-f]+", key):
        rows = conn.execute(
            "SELECT * FROM records WHERE uid >= ? AND uid < ? LIMIT 2", (key, key + "g")
        ).fetchall()
    if len(rows) == 1:
        return rows[0]
    if len(rows) > 1:
        raise InputError(f"Record id {ref!r} is ambiguous.", hint="give more characters of the id.")
    raise InputError(
        f"No record {ref!r} in the audit store.",
        hint="run `companion query` to list record ids (newest first).",
    )
