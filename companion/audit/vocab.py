"""Vocabulary extended, truncated or reordered: compare embedding and lm_head rows that match.

Rows are paired by token string when both checkpoints have a tokenizer beside them
(tokenizer.json or vocab.txt, read by companion.architecture.tokenizer), else by ID,
testing a shift of the IDs (tokens inserted or removed at the start). The paired rows are
compared with a random-pairing null (rowstats.row_test); the counts of new, dropped and
moved tokens are reported with the figures.
"""

from __future__ import annotations

import filecmp
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from companion.audit.pairing import Side
from companion.audit.rowstats import Array, Findings, RowTest, read_row_set, row_test, sample_rows
from companion.audit.schemas import Derivation, Reason
from companion.errors import CompanionError

ROWS = 2048  # shared rows compared per table
SHIFT_ROWS = 256  # rows per candidate shift (a separate sample from the final test)
MAX_SHIFT = 16
TABLES = (("embedding", "tok"), ("lm_head", "lm_head"))


@dataclass(frozen=True)
class RowMap:
    """Paired rows of A and B (ids_a[i] <-> ids_b[i]) and how the vocabularies differ."""

    ids_a: Array
    ids_b: Array
    shared: int
    new: int
    dropped: int
    moved: int
    source: str


def tokenizer_path(side: Side) -> Path | None:
    """tokenizer.json or vocab.txt beside a local checkpoint, if any."""
    if side.ckpt.remote:
        return None
    path = Path(side.ckpt.path)
    folder = path if path.is_dir() else path.parent
    for name in ("tokenizer.json", "vocab.txt"):
        if (folder / name).is_file():
            return (folder / name).resolve()
    return None


def tokenizer_vocab(path: Path | None) -> dict[str, int] | None:
    """Token string -> ID from a tokenizer file, or None (absent or unreadable)."""
    from companion.architecture.tokenizer import load_vocab

    if path is None:
        return None
    try:
        return dict(load_vocab(path).tokens)
    except CompanionError:
        return None


def by_string(ta: dict[str, int], tb: dict[str, int], rows_a: int, rows_b: int) -> RowMap:
    """Pair rows through shared token strings (IDs beyond a table's rows are ignored)."""
    va = {s: i for s, i in ta.items() if 0 <= i < rows_a}
    vb = {s: i for s, i in tb.items() if 0 <= i < rows_b}
    shared = sorted(set(va) & set(vb), key=lambda s: va[s])
    ids_a = np.array([va[s] for s in shared], dtype=np.int64)
    ids_b = np.array([vb[s] for s in shared], dtype=np.int64)
    moved = int(np.count_nonzero(ids_a != ids_b))
    new, dropped = len(vb) - len(shared), len(va) - len(shared)
    return RowMap(ids_a, ids_b, len(shared), new, dropped, moved, "tokens")


def _shifted(rows_a: int, rows_b: int, shift: int) -> tuple[Array, Array]:
    """Row pairs a <-> a + shift inside both tables."""
    lo, hi = max(0, -shift), min(rows_a, rows_b - shift)
    ids_a = np.arange(lo, max(hi, lo), dtype=np.int64)
    return ids_a, ids_a + shift


def by_id(side_a: Side, side_b: Side, name_a: str, name_b: str, seed: int) -> RowMap:
    """Pair rows by ID, with the best shift in [-MAX_SHIFT, MAX_SHIFT] (chosen on other rows)."""
    ra, rb = side_a.ref(name_a), side_b.ref(name_b)
    na, nb = int(ra.info.shape[0]), int(rb.info.shape[0])
    best, best_r = 0, -np.inf
    for shift in range(-MAX_SHIFT, MAX_SHIFT + 1):
        ids_a, ids_b = _shifted(na, nb, shift)
        even = ids_a % 2 == 0  # the shift is chosen on even A rows, tested on odd ones
        ids_a, ids_b = ids_a[even], ids_b[even]
        if ids_a.size < 8:
            continue
        pick = sample_rows(ids_a.size, SHIFT_ROWS, seed + 1)
        t = row_test(read_row_set(ra, ids_a[pick]), read_row_set(rb, ids_b[pick]), seed, 2)
        if t is not None and t.observed > best_r + 1e-9:
            best, best_r = shift, t.observed
    ids_a, ids_b = _shifted(na, nb, best)
    shared = int(ids_a.size)
    moved = shared if best else 0
    odd = ids_a % 2 == 1  # rows not used to choose the shift (no selection bias)
    source = f"IDs (shift {best:+d} of ±{MAX_SHIFT}, chosen on even rows, tested on odd)"
    return RowMap(ids_a[odd], ids_b[odd], shared, nb - shared, na - shared, moved, source)


def _table_test(
    side_a: Side, side_b: Side, names: tuple[str, str], m: RowMap, seed: int
) -> RowTest | None:
    """Compare a sample of the paired rows of one table."""
    ra, rb = side_a.ref(names[0]), side_b.ref(names[1])
    if ra.info.shape[1:] != rb.info.shape[1:] or m.ids_a.size < 8:
        return None
    pick = sample_rows(m.ids_a.size, ROWS, seed)
    return row_test(read_row_set(ra, m.ids_a[pick]), read_row_set(rb, m.ids_b[pick]), seed)


def _names(side: Side, role: str, slot: str) -> str | None:
    """A 2-D table of a side."""
    name = side.at((role, slot, None, "weight"), None)
    return name if name is not None and len(side.ref(name).info.shape) == 2 else None


def row_map(
    a: Side, b: Side, name_a: str, name_b: str, seed: int, inputs: set[Path]
) -> RowMap | None:
    """Rows paired by token string when both tokenizers are present, else by ID.

    None when there is nothing to pair: no tokenizers and tables of the same row count
    (the ordinary element-wise pair covers them).
    """
    na, nb = int(a.ref(name_a).info.shape[0]), int(b.ref(name_b).info.shape[0])
    pa, pb = tokenizer_path(a), tokenizer_path(b)
    if na == nb and pa is not None and pb is not None and filecmp.cmp(pa, pb, shallow=False):
        return None  # the same tokenizer file: nothing moved (and nothing to parse)
    ta, tb = tokenizer_vocab(pa), tokenizer_vocab(pb)
    if ta is not None and tb is not None and pa is not None and pb is not None:
        inputs |= {pa, pb}  # recorded in the manifest
        return by_string(ta, tb, na, nb)
    return by_id(a, b, name_a, name_b, seed) if na != nb else None


@dataclass(frozen=True)
class VocabMaps:
    """Each table's names and row map (None: the same vocabulary), and the tokenizers read.

    Computed once per audit: the shape comparison tests the paired rows, and the hidden
    alignment reads its embedding features through the same pairing (aligned.py)."""

    tables: dict[str, tuple[str, str, RowMap | None]]
    inputs: frozenset[Path]

    def rows(self, role: str) -> RowMap | None:
        """The row map of a table (None when absent or the vocabulary is the same)."""
        return self.tables[role][2] if role in self.tables else None


def vocab_maps(a: Side, b: Side, seed: int) -> VocabMaps:
    """Pair the rows of every table both sides have at the same width."""
    tables: dict[str, tuple[str, str, RowMap | None]] = {}
    inputs: set[Path] = set()
    for role, slot in TABLES:
        na, nb = _names(a, role, slot), _names(b, role, slot)
        if na is None or nb is None:
            continue
        if a.ref(na).info.shape[1:] != b.ref(nb).info.shape[1:]:
            continue  # hidden width changed: width.py compares the columns
        tables[role] = (na, nb, row_map(a, b, na, nb, seed, inputs))
    return VocabMaps(tables, frozenset(inputs))


def _kinds(m: RowMap) -> list[str]:
    """The derivation kinds a row map shows."""
    kinds = ["vocabulary_extended"] if m.new else []
    kinds += ["vocabulary_truncated"] if m.dropped else []
    if m.moved and not kinds:
        kinds.append("vocabulary_reordered")
    return kinds


def compare_vocab(a: Side, b: Side, seed: int, maps: VocabMaps | None = None) -> Findings:
    """Pair and compare embedding / lm_head rows when the vocabularies differ."""
    out = Findings()
    maps = maps if maps is not None else vocab_maps(a, b, seed)
    out.inputs |= maps.inputs
    for role, (na, nb, m) in maps.tables.items():
        if m is None or not (m.new or m.dropped or m.moved):
            continue  # same vocabulary: the ordinary element-wise pair covers it
        t = _table_test(a, b, (na, nb), m, seed)
        if t is None:
            continue
        out.handled.add(role)
        out.reasons.append(_reason(role, a.ref(na).info.shape[0], b.ref(nb).info.shape[0], m, t))
        if t.related:
            out.related = True
            out.derivations += [_derivation(k, role, m, t) for k in _kinds(m)]
    return _dedupe(out)


def _reason(role: str, rows_a: int, rows_b: int, m: RowMap, t: RowTest) -> Reason:
    """The row comparison as a reason."""
    what = (
        f"{role}: {rows_a} -> {rows_b} rows, paired by {m.source}: {m.shared} shared, "
        f"{m.new} new in B, {m.dropped} dropped, {m.moved} moved; shared rows"
    )
    return t.reason("vocabulary", role, what, "random row pairing (same rows)")


def _derivation(kind: str, role: str, m: RowMap, t: RowTest) -> Derivation:
    """A vocabulary derivation with its figures."""
    words = {
        "vocabulary_extended": f"{m.new} tokens added",
        "vocabulary_truncated": f"{m.dropped} tokens removed",
        "vocabulary_reordered": f"{m.moved} tokens at other IDs",
    }
    return Derivation(
        kind=kind,
        figures={
            "table": role,
            "shared_rows": m.shared,
            "rows_tested": t.rows,
            "new_rows": m.new,
            "dropped_rows": m.dropped,
            "moved_rows": m.moved,
            "paired_by": m.source,
            "row_pearson": round(t.observed, 4),
            "null_mean": round(t.null_mean, 4),
            "z": round(t.z, 1),
            "p": round(t.p, 4),
        },
        confidence="high" if m.source == "tokens" else "medium",
        statement=f"Vocabulary changed ({words[kind]}); the shared rows still match A's.",
    )


def _dedupe(f: Findings) -> Findings:
    """One derivation per kind (the embedding's when both tables show it)."""
    seen: set[str] = set()
    kept = []
    for d in f.derivations:
        if d.kind not in seen:
            seen.add(d.kind)
            kept.append(d)
    f.derivations = kept
    return f
