"""Benchmark of judgement (not timed): companion's verdicts against peer rules on a model zoo.

The zoo is structured synthetic weights (companion/audit/synth.py): derivations and exact
evasions of one base, plus independent same-config pairs (same init recipe, other seeds).
Peer rules scored in the same run: raw norm cosine > 0.95 (the Solar accusation's rule),
norm Pearson > 0.5, per-layer std-profile fingerprint > 0.9, name-matched element-wise
Pearson > 0.1 and a config-match gate (same config -> derived, as the peer kit's gate).
Prints accuracy, false-derived rate, AUC and a per-pair table. Asserts nothing.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from companion.audit import synth, synth_shapes  # noqa: E402
from companion.audit.schemas import AuditResult, RoleSummary  # noqa: E402
from companion.audit.synth_adapter import write_adapter  # noqa: E402

Weights = dict[str, Any]


def zoo(root: Path) -> list[tuple[str, Path, Path, bool]]:
    """(name, A, B, truly derived) for every pair."""
    spec = synth.Spec()
    w = synth.base(spec, 0)
    pruned, pspec = synth.depth_pruned(w, spec, drop=(1,))
    small = synth.finetune(w, seed=1, update=0.1, noise=0.1)
    derived: dict[str, tuple[Weights, synth.Spec]] = {
        "fine-tune": (synth.finetune(w, seed=1), spec),
        "lora-merged": (synth.lora_merged(w, seed=6), spec),
        "bf16 cast": (synth.cast(w), spec),
        "depth-pruned": (pruned, pspec),
        "units+heads permuted": (synth.permuted(w, spec), spec),
        "rescaled": (synth.rescaled(w, spec), spec),
        "hidden permuted (ft)": (synth.hidden_permuted(small), spec),
        "all permuted (ft)": (synth.hidden_permuted(synth.permuted(small, spec), seed=9), spec),
        "hidden perm + rescale": (synth.hidden_permuted(synth.rescaled(small, spec)), spec),
        "layers permuted": synth_shapes.layers_reordered(w, spec, [2, 0, 3, 1]),
        "layers permuted (ft)": synth_shapes.layers_reordered(small, spec, [1, 3, 0, 2]),
        "hidden perm + layers": synth_shapes.layers_reordered(
            synth.hidden_permuted(small), spec, [2, 0, 3, 1]
        ),
        "heads rotated": (synth.rotated(w, spec), spec),
        "rotated + hidden perm": (synth.hidden_permuted(synth.rotated(small, spec)), spec),
    }
    a = synth.save(root / "base", w, spec)
    out = [
        (n, a, synth.save(root / n.replace(" ", "_"), x, s), True) for n, (x, s) in derived.items()
    ]
    out += [(n, a, b, t) for n, b, t in synth_shapes.zoo(root / "shapes", a, w, spec)]
    for seed in (100, 101, 102, 103):
        b = synth.save(root / f"ind{seed}", synth.base(spec, seed), spec)
        out.append((f"independent seed {seed}", a, b, False))
    twin = synth.rotated(synth.base(spec, 104), spec, seed=104)
    out.append(("indep. heads rotated", a, synth.save(root / "ind_rotated", twin, spec), False))
    return out


def extra_pairs(root: Path) -> list[tuple[str, Path, str, bool, dict[str, Any]]]:
    """Pairs that need more than two paths: (name, A, B as given, truly derived, extra args)."""
    spec = synth.Spec()
    w, c, d = synth.base(spec, 0), synth.base(spec, 100), synth.base(spec, 200)
    a = root / "base"
    adapter = write_adapter(root / "adapter", w, seed=7)
    merged = {k: (0.6 * w[k] + 0.4 * c[k]).astype(np.float32) for k in w}
    merge = synth.save(root / "linear_merge", merged, spec)
    three = {k: (0.5 * w[k] + 0.3 * c[k] + 0.2 * d[k]).astype(np.float32) for k in w}
    three = synth.finetune(three, seed=4, update=0.1, noise=0.1)  # not an exact fit
    merge3 = synth.save(root / "merge3", three, spec)
    cpath = synth.save(root / "merge_parent", c, spec)
    both = [str(cpath), str(synth.save(root / "merge_parent2", d, spec))]
    ind = root / "ind100"
    return [
        ("adapter-merged (A+LoRA)", a, f"{a}+{adapter}", True, {}),
        ("linear merge 0.6A+0.4C", a, str(merge), True, {"baseline": str(cpath)}),
        ("indep., baseline C", a, str(ind), False, {"baseline": str(cpath)}),
        ("merge .5A+.3C+.2D, ft", a, str(merge3), True, {"baseline": both}),
        ("merge 0.6A+0.4C; C, D", a, str(merge), True, {"baseline": both}),
        ("fine-tune; C, D", a, str(root / "fine-tune"), True, {"baseline": both}),
        ("indep.; C, D", a, str(root / "ind101"), False, {"baseline": both}),
    ]


def _kinds(r: AuditResult) -> str:
    """The derivations named; a merge with the β of each baseline it took from."""
    out = []
    for d in r.derivation:
        betas = [f"{k.removeprefix('beta.')}={v}" for k, v in d.figures.items() if k == "beta"]
        betas += [f"{k.removeprefix('beta.')}={v}" for k, v in d.figures.items() if "beta.C" in k]
        out.append(f"{d.kind}({' '.join(betas)})" if betas else d.kind)
    return ",".join(out)


def _config_of(b: str) -> Path:
    """The config.json of B (of its base for BASE+ADAPTER)."""
    return Path(b if Path(b).exists() else b.rsplit("+", 1)[0]) / "config.json"


def _role(r: AuditResult, group: str) -> Any:
    """A role summary (an empty one when no tensor of the group kept its shape)."""
    return next((g for g in r.per_role if g.role == group), RoleSummary(role=group, tensors=0))


PEERS: dict[str, Callable[[AuditResult], float]] = {
    "norm cosine>0.95": lambda r: (_role(r, "norm").cosine_median or 0.0) - 0.95,
    "norm pearson>0.5": lambda r: (_role(r, "norm").pearson_median or 0.0) - 0.5,
    "std fingerprint>0.9": lambda r: ((r.fingerprint.pearson or 0.0) if r.fingerprint else 0) - 0.9,
    "elementwise r>0.1": lambda r: (
        float(np.median([t.metrics.pearson or 0.0 for t in r.per_tensor] or [0.0])) - 0.1
    ),
}


def _companion_score(r: AuditResult) -> float:
    """A continuous score for the AUC: derived > inconclusive > independent, then z."""
    z = r.aligned.z if r.aligned is not None and r.aligned.z is not None else 0.0
    return {"derived": 100.0, "inconclusive": 0.0, "independent": -100.0}[r.verdict] + min(z, 99)


def auc(scores: list[float], truth: list[bool]) -> float:
    """Area under the ROC curve (ties count half)."""
    pos = [s for s, t in zip(scores, truth, strict=True) if t]
    neg = [s for s, t in zip(scores, truth, strict=True) if not t]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / max(len(pos) * len(neg), 1)


def main() -> None:
    """Build the zoo, audit every pair, score companion and the peer rules."""
    from companion.toolbox import run_tool
    from companion.tools import ToolContext

    with tempfile.TemporaryDirectory() as tmp:
        pairs = [(n, a, str(b), t, {}) for n, a, b, t in zoo(Path(tmp))] + extra_pairs(Path(tmp))
        results = []
        for name, a, b, truth, extra in pairs:
            r = run_tool("audit.compare", {"a": str(a), "b": b, **extra}, ToolContext())
            assert isinstance(r, AuditResult)
            same_cfg = (a / "config.json").read_text() == _config_of(b).read_text()
            results.append((name, truth, r, same_cfg))
    names = ["companion", *PEERS, "config gate"]
    scores: dict[str, list[float]] = {n: [] for n in names}
    calls: dict[str, list[bool]] = {n: [] for n in names}
    print(f"{'pair':26} {'truth':8} {'companion':13} derivation / " + " | ".join(names[1:]))
    for name, truth, r, same_cfg in results:
        scores["companion"].append(_companion_score(r))
        calls["companion"].append(r.verdict == "derived")
        for peer, rule in PEERS.items():
            s = rule(r)
            scores[peer].append(s)
            calls[peer].append(s > 0)
        scores["config gate"].append(float(same_cfg))
        calls["config gate"].append(same_cfg)
        kinds = _kinds(r)
        peer_calls = " | ".join("D" if calls[p][-1] else "-" for p in names[1:])
        print(
            f"{name:26} {'derived' if truth else 'indep':8} {r.verdict:13} {kinds} / {peer_calls}"
        )
    truth = [t for _, t, _, _ in results]
    print(f"\n{'method':22} {'accuracy':>9} {'false-derived':>14} {'AUC':>6}")
    for n in names:
        acc = np.mean([c == t for c, t in zip(calls[n], truth, strict=True)])
        neg = [c for c, t in zip(calls[n], truth, strict=True) if not t]
        print(f"{n:22} {acc:9.0%} {np.mean(neg):14.0%} {auc(scores[n], truth):6.2f}")


if __name__ == "__main__":
    main()
