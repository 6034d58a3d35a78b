"""Store tools: query, export, verify, check, register and migrate-to (CLI, LSP and LLM from one
place)."""

from __future__ import annotations

from companion.errors import InputError
from companion.files import output_target
from companion.manifest import build_manifest
from companion.store.check import check_backend, check_store
from companion.store.db import backend_for, settings_store
from companion.store.engine import register
from companion.store.export import build_bundle
from companion.store.query import find_record, run_query
from companion.store.render import bundle_markdown
from companion.store.schemas import (
    CheckInput,
    CheckResult,
    ExportInput,
    ExportResult,
    MigrateInput,
    MigrateResult,
    QueryInput,
    QueryResult,
    RegisterInput,
    RegisterResult,
    VerifyInput,
    VerifyResult,
)
from companion.store.verify import verify
from companion.tools import ToolContext, tool


@tool(
    "audit.query",
    description="Query recorded evidence summaries, audits, architecture descriptions and "
    "tokenizer comparisons: filter by model, pair, verdict, kind, date, tensor name, role and "
    "per-tensor metric thresholds; sorted and paginated.",
    read_only=True,
    cli="query",
)
def query_tool(args: QueryInput, ctx: ToolContext) -> QueryResult:
    """Run one query against the store."""
    backend = backend_for(ctx.settings)
    with settings_store(ctx.settings) as conn:
        return run_query(conn, args, ctx.roots, backend.label, confine=ctx.confine)


@tool(
    "store.export",
    description="Export one recorded run as a self-contained evidence bundle (JSON or "
    "markdown): manifest with input hashes, parameters, models and the full result.",
    read_only=False,
    cli="export",
    positional=("id",),
)
def export_tool(args: ExportInput, ctx: ToolContext) -> ExportResult:
    """Build the bundle; write it to `output` when asked."""
    with settings_store(ctx.settings) as conn:
        bundle = build_bundle(conn, find_record(conn, args.id))
    result = ExportResult(id=bundle["id"], format=args.format, bundle=bundle)
    if args.output:
        target = output_target(ctx.path(args.output), args.overwrite, "Export")
        text = result.to_json() if args.format == "json" else bundle_markdown(bundle)
        try:
            target.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"Cannot write {target}: {exc.strerror or exc}.",
                hint="choose a writable --output path.",
            ) from None
        result.written = str(target)
    return result


@tool(
    "store.verify",
    description="Re-verify a recorded result: re-hash its input files, re-run the recorded "
    "tool with the recorded parameters and compare every number within a stated tolerance. "
    "Reports `reproduced` or `mismatch` with the files and values that differ.",
    read_only=True,
    cli="verify",
    positional=("target",),
)
def verify_tool(args: VerifyInput, ctx: ToolContext) -> VerifyResult:
    """Verify a record id, bundle, saved result or manifest."""
    return verify(args, ctx)


@tool(
    "store.check",
    description="Check the audit store (file or PostgreSQL): integrity, schema version, row "
    "counts, and what to do if it is damaged or not a companion store.",
    read_only=True,
    cli="store check",
)
def check_tool(args: CheckInput, ctx: ToolContext) -> CheckResult:
    """Inspect the configured store (or the given file) without changing it."""
    if args.path:
        return check_store(ctx.path(args.path))
    return check_backend(backend_for(ctx.settings))


@tool(
    "store.migrate_to",
    description="Copy the SQLite audit store into an empty PostgreSQL database (the shared team "
    "store), verified table by table with row counts and checksums.",
    read_only=False,
    cli="store migrate-to",
    positional=("url",),
)
def migrate_to_tool(args: MigrateInput, ctx: ToolContext) -> MigrateResult:
    """Copy the configured (or given) SQLite file into the PostgreSQL store at `url`."""
    from companion.store.transfer import migrate_to

    if ctx.confine:  # the user's store and a database server are both outside the workspace
        raise InputError(
            "Copying the store to a database is not offered to chat or agents.",
            hint=f"run `companion store migrate-to {args.url}` yourself.",
        )
    source = ctx.path(args.source) if args.source else ctx.settings.resolved_store_path()
    return migrate_to(source, args.url, ctx.job())


@tool(
    "store.register",
    description="Fingerprint model files (sha256 and size) and record them in the audit store, "
    "so later runs can be matched to this exact content and re-verified.",
    read_only=True,
    cli="store register",
    positional=("paths",),
    record=True,
)
def register_tool(args: RegisterInput, ctx: ToolContext) -> RegisterResult:
    """Hash the files and return a manifest."""
    paths = [ctx.path(p) for p in args.paths]
    return register(
        paths,
        ctx.job(),
        lambda fs: build_manifest("store.register", args.model_dump(mode="json"), fs),
    )
