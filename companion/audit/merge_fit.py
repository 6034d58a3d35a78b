"""Which baseline models B was merged from: B ≈ α·A + Σ βᵢ·Cᵢ over every matrix (merge.py).

The candidates are screened in the order given. One with no matrix of A's shape is not
comparable. One that is (up to scale) a copy of A or of an earlier candidate, or a
combination of them (its part outside their span under REDUNDANT of its norm in most
matrices), is redundant and left out of the fit: its β would only split another column's
share at random. Within a matrix, a candidate equal to the columns already there is dropped
for that matrix alone. The rest are fitted together; a candidate contributes when its β is
clearly nonzero in most of its matrices (median β >= MIN_BETA, median |t| >= MIN_T, |t| >= 3
in at least MIN_SHARE of them), and a merge is named when one does and A keeps a share
α >= MIN_BETA. With a single candidate this is the earlier single --baseline test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import TYPE_CHECKING, Any

import numpy as np

from companion.audit.merge import MultiFit, fit_multi, spanned
from companion.audit.schemas import CandidateFit, Derivation, MergeFit

if TYPE_CHECKING:
    from companion.audit.summarize import Candidate, Streams

Array = np.ndarray[Any, Any]
MIN_BETA = 0.05  # a smaller share of a candidate is not called a merge
MIN_T = 5.0  # median |t| of β over matrices
MIN_SHARE = 0.5  # share of matrices whose β has |t| >= 3
REDUNDANT = 0.01  # a candidate within 1 % of the span of the columns before it adds nothing


@dataclass
class _Matrix:
    """One matrix's aligned samples: A's, B's and each candidate's that has it (by index)."""

    a: Array
    b: Array
    cs: dict[int, Array]


@dataclass
class _Fitted:
    """One matrix's fit and which candidates were its columns."""

    fit: MultiFit
    cols: list[int]


@dataclass
class _Tally:
    """One candidate's β and |t| over the matrices it was fitted in."""

    betas: list[float] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)


def _matrices(s: Streams) -> list[_Matrix]:
    """The samples of every matrix B shares with A, with each candidate's of the same shape."""
    by_a = [{p.name_a: p.name_b for p in c.pairs} for c in s.candidates]
    out = []
    for pair in s.pairs:
        if len(s.a.ref(pair.name_a).info.shape) != 2:
            continue
        a, b = s.a.samples.get(pair.name_a), s.b.samples.get(pair.name_b)
        if a is None or b is None or a.size != b.size:
            continue
        cs = {}
        for i, cand in enumerate(s.candidates):
            name = by_a[i].get(pair.name_a)
            c = cand.side.samples.get(name) if name is not None else None
            if c is not None and c.size == a.size:
                cs[i] = c
        if cs:
            out.append(_Matrix(a, b, cs))
    return out


def _unfit(cand: Candidate) -> str:
    """Why a candidate shares no matrix with A and B (its first shape mismatch, if any)."""
    shapes = [(n, r) for n, side, r in cand.unmatched if side == "a" and r.startswith("shape ")]
    if shapes:
        name, why = shapes[0]
        why = why.split(" in B (")[0].replace(" vs ", " in A vs ", 1)
        return f"no matrix of A's shape ({len(shapes)} tensors differ, e.g. {name}: {why})"
    return "no matrix pairs with A's and B's (other names, roles or layers)"


def _depth(s: Streams, cand: Candidate) -> str:
    """A note when a candidate's depth differs from A's (its layers paired through B's)."""
    la, lc = len(s.a.layers()), len(cand.side.layers())
    if la == lc:
        return ""
    return f"; {lc} layers against A's {la}, paired through B's layer map"


def _redundancy(ms: list[_Matrix], i: int, kept: list[int]) -> str | None:
    """Why candidate i adds nothing beyond A and the kept candidates, or None."""
    cols = [("A", -1), *((f"C{j + 1}", j) for j in kept)]
    rows = [m for m in ms if i in m.cs]

    def resid(use: list[int]) -> float:
        vals = [
            spanned(m.cs[i], [m.a if j < 0 else m.cs[j] for j in use if j < 0 or j in m.cs])
            for m in rows
        ]
        return median([v for v in vals if v is not None] or [1.0])

    if resid([j for _, j in cols]) >= REDUNDANT:
        return None
    singles = {name: resid([j]) for name, j in cols}
    name, r = min(singles.items(), key=lambda kv: kv[1])
    if r < REDUNDANT:
        return f"a copy of {name} up to scale: what differs is {r:.2%} of its norm"
    return f"a combination of {', '.join(n for n, _ in cols)} (to within {REDUNDANT:.0%})"


def _fit_matrices(ms: list[_Matrix], kept: list[int]) -> list[_Fitted]:
    """Fit each matrix on A and the kept candidates it has (not one the columns before span)."""
    out = []
    for m in ms:
        cols: list[int] = []
        for i in kept:
            if i in m.cs:
                r = spanned(m.cs[i], [m.a, *(m.cs[j] for j in cols)])
                if r is not None and r >= REDUNDANT:
                    cols.append(i)
        if cols and (fit := fit_multi(m.a, m.b, [m.cs[i] for i in cols])) is not None:
            out.append(_Fitted(fit, cols))
    return out


def _iqr(values: list[float]) -> float:
    """Interquartile range."""
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def _candidate(index: int, label: str, tally: _Tally) -> CandidateFit:
    """A fitted candidate's figures and whether it contributes."""
    if not tally.betas:
        return CandidateFit(
            index=index,
            label=label,
            status="redundant",
            reason=f"within {REDUNDANT:.0%} of A or an earlier baseline in every matrix it has",
        )
    beta, t = median(tally.betas), median(tally.ts)
    share = sum(x >= 3.0 for x in tally.ts) / len(tally.ts)
    contributes = beta >= MIN_BETA and t >= MIN_T and share >= MIN_SHARE
    if contributes:
        reason = ""
    elif beta <= -MIN_BETA and t >= MIN_T:
        reason = f"β {beta:.4f}, median |t| {t:.1f}: subtracted from B, not merged into it"
    elif beta < MIN_BETA:
        reason = f"β {beta:.4f} < {MIN_BETA}, median |t| {t:.1f}: B holds none of it"
    else:
        reason = f"β {beta:.4f}, median |t| {t:.1f} (< {MIN_T:g} or in < half): not clearly nonzero"
    return CandidateFit(
        index=index,
        label=label,
        status="contributes" if contributes else "not_contributing",
        tensors=len(tally.betas),
        beta=round(beta, 4),
        beta_iqr=round(_iqr(tally.betas), 4),
        beta_t_median=round(t, 1),
        share_t3=round(share, 3),
        reason=reason,
    )


def fit_candidates(s: Streams) -> MergeFit | None:
    """The fit of B on A and every baseline, each candidate's status; None without baselines."""
    if not s.candidates:
        return None
    labels = [c.side.ckpt.label for c in s.candidates]
    ms = _matrices(s)
    status: dict[int, CandidateFit] = {}
    kept: list[int] = []
    for i, cand in enumerate(s.candidates):
        if not any(i in m.cs for m in ms):
            status[i] = CandidateFit(
                index=i + 1, label=labels[i], status="not_comparable", reason=_unfit(cand)
            )
        elif (why := _redundancy(ms, i, kept)) is not None:
            status[i] = CandidateFit(index=i + 1, label=labels[i], status="redundant", reason=why)
        else:
            kept.append(i)
    fitted = _fit_matrices(ms, kept)
    tallies = {i: _Tally() for i in kept}
    for f in fitted:
        for i, beta, t in zip(f.cols, f.fit.betas, f.fit.t_betas, strict=True):
            tallies[i].betas.append(beta)
            tallies[i].ts.append(t)
    for i in kept:
        status[i] = _candidate(i + 1, labels[i], tallies[i])
        if status[i].status != "contributes" and (depth := _depth(s, s.candidates[i])):
            status[i].reason += depth
    fits = [f.fit for f in fitted]
    return MergeFit(
        tensors=len(fits),
        alpha=round(median(f.alpha for f in fits), 4) if fits else None,
        alpha_iqr=round(_iqr([f.alpha for f in fits]), 4) if fits else None,
        alpha_t_median=round(median(f.t_alpha for f in fits), 1) if fits else None,
        residual_median=round(median(f.residual for f in fits), 4) if fits else None,
        residual_a_only_median=round(median(f.residual_a for f in fits), 4) if fits else None,
        candidates=[status[i] for i in range(len(s.candidates))],
    )


def not_named(fit: MergeFit, verdict: str) -> str:
    """Why no merge is named from this fit."""
    if verdict != "derived":
        return f"the verdict is {verdict}: a merge is named only for a derived B"
    if not any(c.status == "contributes" for c in fit.candidates):
        return "no candidate contributes"
    return f"A's share α {fit.alpha} is below {MIN_BETA}: B is the candidate, not a merge with A"


def is_merge(fit: MergeFit | None) -> bool:
    """A candidate contributes and A still holds a share of B."""
    if fit is None or fit.alpha is None or fit.alpha < MIN_BETA:
        return False
    return any(c.status == "contributes" for c in fit.candidates)


def _figures(fit: MergeFit, used: list[CandidateFit]) -> dict[str, float | int | str]:
    """α, each contributing βᵢ (keys tagged .Cᵢ when several were given), the fit, the rest."""
    figures: dict[str, float | int | str] = {
        "alpha": fit.alpha or 0.0,
        "alpha_iqr": fit.alpha_iqr or 0.0,
        "alpha_t_median": fit.alpha_t_median or 0.0,
    }
    several = len(fit.candidates) > 1  # one baseline: the keys of the single-C fit
    for c in used:
        tag = f".C{c.index}" if several else ""
        figures |= {f"beta{tag}": c.beta or 0.0, f"beta_iqr{tag}": c.beta_iqr or 0.0}
        figures[f"beta_t_median{tag}"] = c.beta_t_median or 0.0
    figures |= {
        "residual_median": fit.residual_median or 0.0,
        "residual_a_only_median": fit.residual_a_only_median or 0.0,
        "tensors": fit.tensors,
    }
    if several:
        figures |= {f"C{c.index}": c.label for c in used}
    for status in ("not_contributing", "redundant", "not_comparable"):
        if left := [c for c in fit.candidates if c.status == status]:
            figures[status] = ", ".join(f"C{c.index} {c.label}" for c in left)
    return figures


def _left_out(fit: MergeFit) -> str:
    """The candidates not in the merge, by status, each with why."""
    out = ""
    for status in ("not_contributing", "redundant", "not_comparable"):
        if left := [c for c in fit.candidates if c.status == status]:
            items = "; ".join(f"C{c.index} {c.label} ({c.reason})" for c in left)
            out += f" {status.replace('_', ' ').capitalize()}: {items}."
    return out


def merge_derivation(fit: MergeFit | None) -> Derivation | None:
    """A `merge` derivation naming the contributing candidates, else None."""
    if fit is None or not is_merge(fit):
        return None
    used = [c for c in fit.candidates if c.status == "contributes"]
    single = len(fit.candidates) == 1
    terms = " + ".join(f"{c.beta}·{'C' if single else f'C{c.index}'}" for c in used)
    exact = (fit.residual_median or 0.0) < 0.01
    names = "" if single else " " + "; ".join(f"C{c.index} = {c.label}" for c in used) + "."
    names += _left_out(fit)
    return Derivation(
        kind="merge",
        figures=_figures(fit, used),
        confidence="high" if exact else "medium",
        statement=f"B ≈ {fit.alpha}·A + {terms} per tensor (least squares over "
        f"{fit.tensors} matrices; residual {fit.residual_median} of B's norm, "
        f"{fit.residual_a_only_median} with A alone)"
        + (": a linear merge." if exact else ": a merge, then further changes.")
        + names,
    )
