"""Shape-changing derivations compared, not skipped: vocabulary, width, MoE upcycling.

Runs after the ordinary pairing. Tensors whose shapes differ go to the alignment that fits
them (vocab.py, width.py, upcycle.py); what no alignment fits gets one "not comparable"
reason per role group, naming the shapes and the next step.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from companion.audit.alignment import ROLE_GROUP, parse_name
from companion.audit.pairing import Side
from companion.audit.rowstats import Findings
from companion.audit.schemas import Derivation, Reason
from companion.audit.upcycle import compare_upcycle
from companion.audit.vocab import VocabMaps, compare_vocab
from companion.audit.width import compare_width

_NEXT = {
    "attn": "heads pruned or re-laid out: check num_attention_heads / num_key_value_heads in "
    "both config.json files, or audit with --roles norm,mlp",
    "expert": "experts of another width: audit the dense parts with --roles attn,norm",
    "router": "a router only exists in MoE models: nothing in a dense A to compare it with",
}
_DEFAULT_NEXT = "check both config.json files; audit the roles that kept their shapes with --roles"


def _not_comparable(unmatched: list[tuple[str, str, str]], handled: set[str]) -> list[Reason]:
    """One reason per role group whose tensors changed shape and no alignment fitted."""
    by_group: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name, side, why in unmatched:
        if side == "a" and why.startswith("shape "):
            group = ROLE_GROUP.get(parse_name(name).key.role, "other")
            by_group[group].append((name, why))
    out = []
    for group, items in sorted(by_group.items()):
        if group in handled:
            continue
        name, why = items[0]
        out.append(
            Reason(
                kind="not_comparable",
                role=group,
                strength="info",
                statement=(
                    f"{group}: {len(items)} tensors changed shape and fit no alignment "
                    f"(vocabulary, width or expert), so they were not compared "
                    f"(e.g. {name}: {why}). "
                    f"Next step: {_NEXT.get(group, _DEFAULT_NEXT)}."
                ),
            )
        )
    return out


def _dtypes(side: Side, label: str) -> Reason | None:
    """Say so when a checkpoint mixes float dtypes tensor by tensor (every one is decoded)."""
    counts: dict[str, int] = defaultdict(int)
    for name in side.by_key.values():
        counts[side.ref(name).info.dtype] += 1
    if len(counts) < 2:
        return None
    listed = ", ".join(f"{d} {n}" for d, n in sorted(counts.items()))
    return Reason(
        kind="mixed_dtypes",
        role=None,
        strength="info",
        statement=(
            f"{label} stores its tensors in {len(counts)} dtypes ({listed}); each tensor is "
            "decoded to float before comparison, so the figures are comparable across them."
        ),
    )


def compare_shapes(
    a: Side,
    b: Side,
    a_to_b: dict[int, int],
    unmatched: list[tuple[str, str, str]],
    layers: list[int],
    seed: int,
    job: Any,
    vocab: VocabMaps | None = None,
) -> Findings:
    """Run every shape alignment that applies; add the not-comparable reasons."""
    out = Findings()
    job.check()
    out.add(compare_vocab(a, b, seed, vocab))
    out.add(compare_width(a, b, a_to_b, layers, seed, job))
    out.add(compare_upcycle(a, b, a_to_b, layers, seed, job))
    said = {r.role for r in out.reasons if r.kind == "not_comparable" and r.role}  # specific
    out.reasons += _not_comparable(unmatched, out.handled | said)
    out.reasons += [r for r in (_dtypes(a, "A"), _dtypes(b, "B")) if r is not None]
    return out


def reconcile(found: list[Derivation]) -> list[Derivation]:
    """Drop what a width change explains: B units at other indices because A's were removed."""
    pruned = next((d for d in found if d.kind == "width_pruned"), None)
    if pruned is None or pruned.figures.get("units_in_order") != "yes":
        return found
    out = []
    for d in found:
        if d.kind == "permuted":
            figures = {k: v for k, v in d.figures.items() if not k.startswith("mlp_units")}
            if not figures:
                continue
            d = d.model_copy(update={"figures": figures})
        out.append(d)
    return out
