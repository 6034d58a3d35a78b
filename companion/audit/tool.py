"""The `audit.compare` tool: registry entry shared by the CLI, LSP and LLM front doors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from companion.audit.schemas import AuditInput, AuditResult
from companion.errors import InputError
from companion.files import output_target
from companion.tools import ToolContext, tool

if TYPE_CHECKING:
    from companion.audit.adapter import AdapterPair


def _resolve(ctx: ToolContext, value: str, what: str) -> Path:
    """Resolve a user path; symlink loops become a clear error."""
    try:
        return ctx.path(value)
    except RuntimeError as exc:  # pathlib raises RuntimeError for symlink loops
        raise InputError(
            f"{what} path {value!r} is a symlink loop ({exc}).",
            hint="point the symlink at a real file or folder.",
        ) from None


def _checkpoint(ctx: ToolContext, value: str, what: str) -> Path | str | AdapterPair:
    """A local checkpoint path, BASE+ADAPTER, or a URL / hf:// reference kept as text."""
    from companion.audit.adapter import AdapterPair, split_pair
    from companion.audit.remote import is_remote

    if (pair := split_pair(value, lambda v: _resolve(ctx, v, what))) is not None:
        return AdapterPair(*pair)
    if not is_remote(value):
        return _resolve(ctx, value, what)
    if ctx.confine:
        raise InputError(
            f"{what} {value!r} is a remote checkpoint; tools called from chat or an agent read "
            "only files inside the workspace.",
            hint="run `companion audit` on the URL yourself, or download it into the workspace.",
        )
    return value


NAME = "audit.compare"
MAX_BASELINES = 4  # each is one more sampled pass over the matrices, and one more column


def _what(i: int, n: int) -> str:
    """How an error names baseline i of n."""
    return "Baseline" if n == 1 else f"Baseline {i + 1}"


def _baselines(ctx: ToolContext, values: list[str]) -> list[Path | str]:
    """The baseline checkpoints (at most MAX_BASELINES; never BASE+ADAPTER)."""
    from companion.audit.adapter import AdapterPair

    if len(values) > MAX_BASELINES:
        raise InputError(
            f"{len(values)} baselines given; an audit fits at most {MAX_BASELINES}.",
            hint=f"keep the {MAX_BASELINES} likeliest merge parents, or audit the candidates in "
            "groups and compare the βs each group reports.",
        )
    out: list[Path | str] = []
    for i, value in enumerate(values):
        c = _checkpoint(ctx, value, _what(i, len(values)))
        if isinstance(c, AdapterPair):
            raise InputError(
                f"{_what(i, len(values))} cannot be BASE+ADAPTER ({value}).",
                hint="pass a checkpoint as C (merge the adapter first).",
            )
        out.append(c)
    return out


@tool(
    NAME,
    description="Audit whether checkpoint B was derived from checkpoint A from the weights "
    "(safetensors, GGUF, PyTorch .bin, or https:// / hf:// URLs read by range; streamed; "
    "B may be BASE+ADAPTER for a PEFT LoRA, or an adapter folder to test against base A): "
    "per-role Pearson/cosine/Spearman with shuffle, cross-layer, "
    "random-init and optional third-model baselines, permutation-robust matching and a "
    "calibrated verdict (derived | independent | inconclusive) with reasons; with baselines "
    "C (up to 4), whether B is a merge a*A + sum of b_i*C_i, and of which.",
    read_only=True,
    cli="audit",
    positional=("a", "b"),
    record=True,
    outputs=("report",),
)
def audit_tool(args: AuditInput, ctx: ToolContext) -> AuditResult:
    """Tool entry point for `audit.compare`."""
    from companion.audit.adapter import is_adapter
    from companion.audit.engine import AuditSetup, run_audit  # lazy: numpy stays out of start-up

    a, b = _checkpoint(ctx, args.a, "A"), _checkpoint(ctx, args.b, "B")
    cs = _baselines(ctx, args.baseline)
    report = _resolve(ctx, args.report, "Report") if args.report else None
    if report is not None:
        output_target(report, args.overwrite, "Report")
    from companion.audit.remote_http import RemoteOptions

    remote = RemoteOptions.from_settings(ctx.settings)
    setup = AuditSetup(ctx.settings.audit_workers, ctx.settings.digest_path(), NAME, remote)
    named = [(a, "A"), *((c, _what(i, len(cs))) for i, c in enumerate(cs))]
    for value, what in named:
        if isinstance(value, Path) and is_adapter(value):
            raise InputError(
                f"{what} {value} is a LoRA adapter folder, not a model.",
                hint="pass its base instead: `companion audit BASE ADAPTER` asks whether the "
                "adapter belongs to BASE, and BASE+ADAPTER audits the merged model.",
            )
    if isinstance(a, Path) and isinstance(b, Path) and is_adapter(b):  # BASE ADAPTER: does it fit?
        from companion.audit.adapter_fit import run_fit

        result = run_fit(args, a, b, ctx.job(), NAME)
    else:
        result = run_audit(args, (a, b, *cs), ctx.job(), setup)
    if report is not None:
        try:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(result.to_markdown(), encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"Cannot write the report {report}: {exc.strerror or exc}.",
                hint="choose a writable --report path.",
            ) from None
        result = result.model_copy(update={"report_path": str(report)})
    return result
