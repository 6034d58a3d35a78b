"""Markdown rendering of an audit result: a table of named sections, rendered in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from companion.mdtext import PATH_LIMIT, code, inline, inline_prose

if TYPE_CHECKING:
    from companion.audit.schemas import AuditResult

_ICON = {"derived": "DERIVED", "independent": "INDEPENDENT", "inconclusive": "INCONCLUSIVE"}


def fmt(x: float | None, digits: int = 3) -> str:
    """A short number or 'n/a' (a value that rounds to zero shows no sign: 0.000, not -0.000)."""
    if x is None:
        return "n/a"
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _n(x: float | None, digits: int = 3) -> str:
    """A table cell for a number."""
    return "–" if x is None else fmt(x, digits)


def _cell(text: str) -> str:
    """Engine prose for a table cell: it may quote a file's names (a `|`, as in |t|, or a
    newline would split the cell)."""
    return inline_prose(text)


def _path(path: str, cell: bool = False) -> str:
    """A checkpoint path or label as a code span."""
    return code(path, PATH_LIMIT, cell=cell)


def _name(name: str) -> str:
    """A tensor name (written by whoever made the file) as a code span in a table cell."""
    return code(name, cell=True)


Section = Callable[["AuditResult", int], list[str]]


def _header(r: AuditResult, max_tensors: int) -> list[str]:
    """Title and the models compared."""
    lines = ["# Weight audit", "", f"- A: {_path(r.a)}", f"- B: {_path(r.b)}"]
    if len(r.baselines) > 1:
        lines += [f"- C{i}: {_path(c)}" for i, c in enumerate(r.baselines, 1)]
        lines.append("- Third model (reference): C1")
    elif r.baseline:
        lines.append(f"- Third model (baseline): {_path(r.baseline)}")
    return lines


def _verdict(r: AuditResult, max_tensors: int) -> list[str]:
    """The verdict and its reasons, each tagged with its strength."""
    lines = ["", f"## Verdict: **{_ICON[r.verdict]}**", ""]
    for reason in r.reasons:
        tag = {"strong": "**strong**", "weak": "*weak*", "info": "info"}[reason.strength]
        lines.append(f"- [{tag}] {inline_prose(reason.statement)}")
    return lines


def _derivation(r: AuditResult, max_tensors: int) -> list[str]:
    """How B appears to have been made, with each derivation's figures."""
    if not r.derivation:
        return []
    lines = ["", "## Derivation", ""]
    for d in r.derivation:
        figures = inline_prose(", ".join(f"{k} {v}" for k, v in list(d.figures.items())[:12]))
        lines.append(
            f"- **{inline(d.kind)}** ({d.confidence}): {inline_prose(d.statement)}"
            + (f" [{figures}]" if figures else "")
        )
    return lines


def _merge_fit(r: AuditResult, max_tensors: int) -> list[str]:
    """B ≈ α·A + Σ βᵢ·Cᵢ: α, then every baseline's share or why it was left out."""
    fit = r.merge_fit
    if fit is None:
        return []
    lines = [
        "",
        "## Merge fit (B ≈ α·A + Σ βᵢ·Cᵢ per matrix, least squares on the aligned samples)",
        "",
        f"{fit.tensors} matrices; α {_n(fit.alpha, 4)} (IQR {_n(fit.alpha_iqr, 4)}, median |t| "
        f"{_n(fit.alpha_t_median, 1)}); residual {_n(fit.residual_median, 4)} of B's norm, "
        f"{_n(fit.residual_a_only_median, 4)} with A alone; merge "
        + (
            "named."
            if fit.named
            else f"not named ({_cell(fit.note or 'no candidate contributes')})."
        ),
        "",
        "| | baseline | status | matrices | β | IQR | median abs t | abs t ≥ 3 | why |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    return lines + [
        f"| C{c.index} | {_path(c.label, True)} | {c.status.replace('_', ' ')} | {c.tensors}"
        f" | {_n(c.beta, 4)} | {_n(c.beta_iqr, 4)} | {_n(c.beta_t_median, 1)}"
        f" | {'–' if c.share_t3 is None else f'{c.share_t3:.0%}'} | {_cell(c.reason)} |"
        for c in fit.candidates
    ]


def _per_role(r: AuditResult, max_tensors: int) -> list[str]:
    """Per-role medians beside their baselines (none for an adapter-fit audit)."""
    if not r.per_role and not r.per_tensor:
        return []
    lines = [
        "",
        "## Per role (medians; every score beside its baselines)",
        "",
        "| role | n | cosine | shuffle cos | Pearson | shuffle null | cross-layer | random init r"
        " | folded r | Spearman | 3rd model r | z | related |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in r.per_role:
        null = f"{_n(g.shuffle_pearson_mean)}±{_n(g.shuffle_pearson_sd)}"
        lines.append(
            f"| {inline(g.role)} | {g.tensors} | {_n(g.cosine_median, 4)}"
            f" | {_n(g.shuffle_cosine_mean, 4)}"
            f" | {_n(g.pearson_median)} | {null} | {_n(g.cross_layer_pearson_mean)}"
            f" | {_n(g.random_init_pearson)} | {_n(g.folded_pearson_median)}"
            f" | {_n(g.spearman_median)} | {_n(g.third_pearson_median)} | {_n(g.z_median, 1)}"
            f" | {'yes' if g.related else 'no'} |"
        )
    return lines


def _permutation(r: AuditResult, max_tensors: int) -> list[str]:
    """Permutation-robust matching tests (when any ran)."""
    tests = [t for g in r.per_role for t in g.permutation]
    if not tests:
        return []
    lines = [
        "",
        "## Permutation-robust matching",
        "",
        "| kind | layer A→B | units | method | matched r | null | z | p | moved |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    return lines + [
        f"| {t.kind} | {t.layer}→{t.layer_b} | {t.units} | {t.method} | {_n(t.observed)}"
        f" | {_n(t.null_mean)}±{_n(t.null_sd)} | {_n(t.z, 1)} | {_n(t.p)} | {t.moved:.0%} |"
        for t in tests
    ]


def _layer_map(r: AuditResult, max_tensors: int) -> list[str]:
    """Which layer of A matched which layer of B."""
    if not r.layer_map:
        return []
    return ["", "## Layer map (A → B)", "", ", ".join(f"{p.a}→{p.b}" for p in r.layer_map)]


def _per_layer(r: AuditResult, max_tensors: int) -> list[str]:
    """Per-layer means."""
    if not r.per_layer:
        return []
    lines = [
        "",
        "## Per layer",
        "",
        "| layer A | layer B | tensors | mean Pearson | cross-layer | std A | std B |",
        "|---|---|---|---|---|---|---|",
    ]
    return lines + [
        f"| {ly.layer} | {ly.layer_b} | {ly.tensors} | {_n(ly.pearson_mean)}"
        f" | {_n(ly.cross_layer_pearson_mean)} | {_n(ly.std_a_mean, 4)}"
        f" | {_n(ly.std_b_mean, 4)} |"
        for ly in r.per_layer
    ]


def _tensors(r: AuditResult, max_tensors: int) -> list[str]:
    """The first `max_tensors` tensor comparisons (none for an adapter-fit audit)."""
    if not r.per_tensor and not r.per_role:
        return []
    lines = [
        "",
        f"## Tensors ({len(r.per_tensor)} compared"
        + (f", first {max_tensors} shown)" if len(r.per_tensor) > max_tensors else ")"),
        "",
        "| A | B | role | cosine | Pearson | null | z | p | rel L2 | identical | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in r.per_tensor[:max_tensors]:
        b = t.baselines
        notes = _cell("; ".join(t.notes + (["cosine trap"] if t.cosine_trap else [])))
        lines.append(
            f"| {_name(t.name_a)} | {_name(t.name_b)} | {inline(t.role)}"
            f" | {_n(t.metrics.cosine, 4)}"
            f" | {_n(t.metrics.pearson)} | {_n(b.shuffle_pearson_mean)}±{_n(b.shuffle_pearson_sd)}"
            f" | {_n(t.z, 1)} | {_n(t.p)} | {_n(t.metrics.rel_l2)} | {_n(t.metrics.identical_frac)}"
            f" | {notes} |"
        )
    return lines


def _left_out(r: AuditResult, max_tensors: int) -> list[str]:
    """Tensors not compared, and MTP tensors flagged but not matched."""
    lines: list[str] = []
    if r.unmatched:
        lines += ["", f"## Not compared ({len(r.unmatched)})", ""]
        lines += [f"- {u.side}: {code(u.name)}: {_cell(u.reason)}" for u in r.unmatched[:40]]
    if r.mtp:
        lines += ["", f"## MTP tensors (flagged, not matched): {len(r.mtp)}", ""]
        lines += [f"- {code(n)}" for n in r.mtp[:20]]
    return lines


def _manifest(r: AuditResult, max_tensors: int) -> list[str]:
    """Tool, time, bytes read and the inputs' digests."""
    m = r.manifest
    lines = [
        "",
        "## Manifest",
        "",
        f"{m.tool} {m.tool_version}, {m.created}; {r.bytes_read / 1e6:.1f} MB compared in "
        f"{r.seconds:.2f} s.",
        "",
    ]
    return lines + [
        f"- {_path(i.path)} ({i.size} bytes) sha256 `{i.sha256}`"
        + (" (digest cache: file unchanged since hashed)" if i.sha256_from == "cache" else "")
        for i in m.inputs
    ]


SECTIONS: tuple[Section, ...] = (
    _header,
    _verdict,
    _derivation,
    _merge_fit,
    _per_role,
    _permutation,
    _layer_map,
    _per_layer,
    _tensors,
    _left_out,
    _manifest,
)


def render(r: AuditResult, max_tensors: int = 60) -> str:
    """The full markdown report: verdict, reasons, roles, layers, tensors, manifest."""
    return "\n".join(line for section in SECTIONS for line in section(r, max_tensors)) + "\n"
