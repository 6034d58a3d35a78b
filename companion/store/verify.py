"""`companion verify ID|FILE.json`: re-hash the inputs, re-run the tool, compare every number."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from companion.errors import Cancelled, CompanionError, InputError
from companion.manifest import Manifest, sha256_file
from companion.store.db import settings_store
from companion.store.query import find_record
from companion.store.record import arg_paths
from companion.store.schemas import Difference, FileCheck, VerifyInput, VerifyResult
from companion.tools import ToolContext, get_tool

# Keys whose values legitimately change between runs (timestamps, timings, our own ids).
VOLATILE_KEYS = frozenset(
    {"manifest", "record_id", "created", "elapsed", "elapsed_s", "duration_s", "seconds"}
    | {"report_path", "plot_png", "plot_svg", "written", "html_path"}
)
# Parameters that make a tool write files: the re-run must not overwrite the user's files.
SIDE_EFFECT_PARAMETERS = ("report", "plot", "output", "html")
MAX_LISTED = 100


class _Comparer:
    """Walks two JSON trees; numbers within tolerance are equal."""

    def __init__(self, rtol: float, atol: float) -> None:
        self.rtol, self.atol = rtol, atol
        self.compared = 0
        self.diffs: list[Difference] = []
        self.count = 0

    def differ(self, where: str, expected: Any, actual: Any) -> None:
        """Note one difference (only the first MAX_LISTED are kept)."""
        self.count += 1
        if len(self.diffs) < MAX_LISTED:
            self.diffs.append(Difference(where=where, expected=expected, actual=actual))

    def walk(self, where: str, expected: Any, actual: Any) -> None:
        """Compare two values recursively."""
        if isinstance(expected, dict) and isinstance(actual, dict):
            for key in sorted(set(expected) | set(actual), key=str):
                if key in VOLATILE_KEYS:
                    continue
                sub = f"{where}.{key}" if where else str(key)
                if key not in actual or key not in expected:
                    self.differ(sub, expected.get(key, "<absent>"), actual.get(key, "<absent>"))
                else:
                    self.walk(sub, expected[key], actual[key])
        elif isinstance(expected, list) and isinstance(actual, list):
            if len(expected) != len(actual):
                self.differ(f"{where} (length)", len(expected), len(actual))
            for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
                self.walk(f"{where}[{_label(e, i)}]", e, a)
        elif _is_number(expected) and _is_number(actual):
            self.compared += 1
            e, a = float(expected), float(actual)
            close = e == a or abs(e - a) <= self.atol + self.rtol * abs(e)
            if not close and not (math.isnan(e) and math.isnan(a)):
                self.differ(where, expected, actual)
        else:
            self.compared += 1
            if expected != actual:
                self.differ(where, expected, actual)


def _is_number(value: Any) -> bool:
    """int or float, but not bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _label(item: Any, index: int) -> str:
    """Name list items by their tensor name when they have one (per_tensor[model.norm.weight])."""
    if isinstance(item, dict):
        for key in ("name_a", "name", "path", "id"):
            if isinstance(item.get(key), str):
                return str(item[key])
    return str(index)


def load_target(target: str, ctx: ToolContext) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(manifest, recorded result, record id) for a record id or a JSON file."""
    looks_like_file = target.endswith(".json") or "/" in target or Path(target).exists()
    if not looks_like_file:
        with settings_store(ctx.settings) as conn:
            row = find_record(conn, target)
        if not row["manifest"]:
            raise InputError(
                f"Record {row['uid']} ({row['kind']}) has no manifest, so it cannot be re-run.",
                hint="only evidence summaries, audits and other manifest-carrying runs verify.",
            )
        return json.loads(row["manifest"]), json.loads(row["result"]), str(row["uid"])
    path = ctx.path(target)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"Cannot read {path} as JSON: {exc}.",
            hint="pass a record id, a bundle from `companion export ID --json`, or a manifest.",
        ) from None
    if isinstance(data, dict) and isinstance(data.get("manifest"), dict):
        result = data["result"] if isinstance(data.get("result"), dict) else data
        return data["manifest"], result, data.get("id") if "result" in data else None
    if isinstance(data, dict) and {"tool", "parameters", "inputs"} <= set(data):
        return _recorded_for_manifest(data, ctx)
    raise InputError(
        f"{path} is neither a manifest nor a result carrying one.",
        hint="pass a record id, a bundle from `companion export ID --json`, or a manifest.",
    )


def _recorded_for_manifest(
    manifest: dict[str, Any], ctx: ToolContext
) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """The newest stored result whose manifest has the same tool, parameters and inputs."""
    key = ("tool", "parameters", "inputs")
    with settings_store(ctx.settings) as conn:
        rows = conn.execute(
            "SELECT uid, manifest, result FROM records WHERE kind = ? AND manifest IS NOT NULL "
            "ORDER BY created DESC",
            (str(manifest["tool"]),),
        )
        for row in rows:
            stored = json.loads(row["manifest"])
            if all(stored.get(k) == manifest.get(k) for k in key):
                return manifest, json.loads(row["result"]), str(row["uid"])
    raise InputError(
        "No recorded result in the audit store matches this manifest, so there is nothing to "
        "compare the re-run with.",
        hint="verify a record id, or a bundle made by `companion export ID --json`.",
    )


def check_remote(entry: dict[str, Any], ctx: ToolContext) -> FileCheck:
    """Re-fetch a remote input's recorded ranges (cache bypassed); never from chat or agents."""
    check = FileCheck(
        path=str(entry["path"]),
        status="missing",
        expected_sha256=str(entry["sha256"]),
        expected_size=int(entry["size"]),
        remote=True,
    )
    if ctx.confine:
        check.reason = (
            "not re-fetched: chat and agents read only workspace files; "
            "run `companion verify` yourself"
        )
        return check
    from companion.audit.remote_http import RemoteOptions
    from companion.audit.remote_verify import recheck

    outcome = recheck(entry, RemoteOptions.from_settings(ctx.settings))
    check.status, check.reason = outcome.status, outcome.reason
    check.actual_sha256, check.actual_size = outcome.etag, outcome.size
    return check


def check_files(manifest: dict[str, Any], ctx: ToolContext) -> list[FileCheck]:
    """Re-hash every recorded input file; re-fetch the recorded ranges of remote ones."""
    checks = []
    for f in manifest.get("inputs") or []:
        ctx.check_cancelled()
        if f.get("sha256_from") == "remote":
            checks.append(check_remote(f, ctx))
            continue
        path = ctx.path(str(f["path"]))
        check = FileCheck(
            path=str(f["path"]),
            status="missing",
            expected_sha256=str(f["sha256"]),
            expected_size=int(f["size"]),
        )
        if path.is_file():
            check.actual_size = path.stat().st_size
            check.actual_sha256 = sha256_file(path)
            check.status = "ok" if check.actual_sha256 == check.expected_sha256 else "changed"
        checks.append(check)
    return checks


def infer_root(manifest: dict[str, Any]) -> Path | None:
    """The folder relative path parameters were resolved against when the run was recorded."""
    inputs = [
        Path(str(f["path"]))
        for f in manifest.get("inputs") or []
        if f.get("sha256_from") != "remote"  # URLs resolve against no folder
    ]
    for _, value in arg_paths(manifest.get("parameters") or {}):
        rel = Path(value).expanduser()
        if rel.is_absolute() or not rel.parts or ".." in rel.parts:
            continue
        parts = tuple(p for p in rel.parts if p != ".")
        if not parts:
            continue
        for f in inputs:
            for i in range(len(f.parts) - len(parts), 0, -1):
                if f.parts[i : i + len(parts)] == parts:
                    return Path(*f.parts[:i])
    return None


def _checked(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest, if it has the shape companion writes (else an InputError naming where)."""
    from pydantic import ValidationError

    try:
        Manifest.model_validate(manifest)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise InputError(
            f"The manifest is not one companion writes: {where}: {first['msg']}.",
            hint="verify a record id, or a bundle made by `companion export ID --json`; "
            "an edited manifest cannot be re-checked.",
        ) from None
    return manifest


def verify(args: VerifyInput, ctx: ToolContext) -> VerifyResult:
    """Re-hash and re-run a recorded computation, reporting exactly what differs."""
    manifest, expected, record_id = load_target(args.target, ctx)
    manifest = _checked(manifest)
    tool = get_tool(str(manifest.get("tool", "")))
    if not tool.record:
        raise InputError(
            f"Tool {tool.name} does not record results, so it cannot be verified.",
            hint="verify an evidence summary, an audit or another recorded run.",
        )
    files = check_files(manifest, ctx)
    root = infer_root(manifest)
    roots = ctx.roots
    if root is not None and (not ctx.confine or any(root.is_relative_to(r) for r in roots)):
        roots = [root, *roots]  # relative parameters resolve where they did when recorded
    rerun_ctx = ToolContext(
        settings=ctx.settings.model_copy(update={"store_enabled": False}),
        roots=roots,
        confine=ctx.confine,
        progress=ctx.progress,
        cancel=ctx.cancel,
        recorder=None,
        runner=ctx.runner,
    )
    comparer = _Comparer(args.rtol, args.atol)
    error = None
    try:
        parameters = dict(manifest.get("parameters") or {})
        parameters.update({k: None for k in SIDE_EFFECT_PARAMETERS if k in parameters})
        parameters.pop("overwrite", None)
        actual = ctx.run(tool.name, parameters, rerun_ctx)
        comparer.walk("", expected, json.loads(actual.model_dump_json()))
    except Cancelled:
        raise
    except CompanionError as exc:
        error = exc.text
    ok = error is None and comparer.count == 0 and all(f.status == "ok" for f in files)
    return VerifyResult(
        target=args.target,
        record_id=record_id,
        tool=tool.name,
        status="reproduced" if ok else "mismatch",
        tolerance=f"|recorded - now| <= {args.atol:g} + {args.rtol:g} * |recorded|",
        recorded_version=manifest.get("tool_version"),
        files=files,
        values_compared=comparer.compared,
        n_differences=comparer.count,
        differences=comparer.diffs,
        rerun_error=error,
    )
