"""Shape-changing derivations are compared, not skipped, and named with their figures.

Every pair is a real folder of safetensors + config.json (+ tokenizer.json) written by
companion.audit.synth_shapes, audited through the registered tool.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.audit_checkpoints import audit, kind

from companion.audit import synth, synth_shapes

SPEC = synth.Spec()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Base A (with its tokenizer) and every shape-changing B, derived and independent."""
    root = tmp_path_factory.mktemp("shapes")
    w = synth.base(SPEC, 0)
    a = synth.save(root / "base", w, SPEC)
    out = {name: b for name, b, _ in synth_shapes.zoo(root, a, w, SPEC)}
    out["base"] = a
    out["finetune"] = synth.save(root / "ft", synth.finetune(w, seed=1), SPEC)
    return out


def test_vocabulary_extended_by_token_string(shapes: dict[str, Path]) -> None:
    r = audit(shapes["base"], shapes["vocab extended"])
    assert r.verdict == "derived"
    d = kind(r, "vocabulary_extended")
    f = d.figures
    assert f["paired_by"] == "tokens" and f["shared_rows"] == 256 and f["new_rows"] == 64
    assert f["dropped_rows"] == 0 and f["moved_rows"] == 0 and d.confidence == "high"
    assert float(f["row_pearson"]) > 0.9 and abs(float(f["null_mean"])) < 0.05
    reason = next(x for x in r.reasons if x.kind == "vocabulary" and x.role == "embedding")
    assert (
        reason.strength == "strong" and reason.baseline_name and "64 new in B" in reason.statement
    )
    assert not [x for x in r.reasons if x.kind == "not_comparable"]  # every change compared
    read = {
        Path(i.path).parent.name for i in r.manifest.inputs if i.path.endswith("tokenizer.json")
    }
    assert {"base", "vocab_extended"} <= read  # both tokenizers are in the manifest


def test_vocabulary_reordered_rows_follow_the_tokenizer(shapes: dict[str, Path]) -> None:
    r = audit(shapes["base"], shapes["vocab reordered"])
    emb = next(t for t in r.per_tensor if t.role == "embedding")
    assert abs(emb.metrics.pearson or 0) < 0.1  # row by row at the same ID: fooled
    f = kind(r, "vocabulary_reordered").figures
    assert f["moved_rows"] >= 250 and f["new_rows"] == 0 and float(f["row_pearson"]) > 0.9
    kind(r, "fine_tune")  # the rows read through the token map: the delta is measured


def test_vocabulary_shift_found_without_tokenizers(shapes: dict[str, Path]) -> None:
    r = audit(shapes["base"], shapes["vocab shifted (no tok)"])
    f = kind(r, "vocabulary_extended").figures
    assert "shift +3" in str(f["paired_by"]) and f["new_rows"] == 3 and f["shared_rows"] == 256
    assert float(f["row_pearson"]) > 0.9


def test_ffn_width_pruning_names_the_survivors(shapes: dict[str, Path]) -> None:
    r = audit(shapes["base"], shapes["ffn width-pruned"])
    assert r.verdict == "derived"
    f = kind(r, "width_pruned").figures
    tested = [k for k in f if k.startswith("survivors.")]
    assert tested and all(f[k] >= 90 for k in tested)  # 96 units kept, each of them found
    assert all(f[k.replace("survivors", "units")] == "128->96" for k in tested)
    assert f["units_in_order"] == "yes"
    assert "permuted" not in {d.kind for d in r.derivation}  # pruning is not a permutation
    width = next(x for x in r.reasons if x.kind == "width")
    assert width.strength == "strong" and "vs null" in width.statement


def test_ffn_pruning_under_a_hidden_permutation(shapes: dict[str, Path]) -> None:
    r = audit(shapes["base"], shapes["ffn pruned + hidden perm"])
    assert r.verdict == "derived"
    f = kind(r, "width_pruned").figures
    tested = [k for k in f if k.startswith("survivors.")]
    assert tested and all(f[k] >= 90 for k in tested)
    assert all(float(f[k.replace("survivors", "match_r")]) > 0.9 for k in tested)


def test_pruned_heads_are_found_among_a_heads(shapes: dict[str, Path]) -> None:
    r = audit(shapes["base"], shapes["heads pruned"])
    assert r.verdict == "derived"
    f = kind(r, "width_pruned").figures
    layers = [k for k in f if k.startswith("heads.")]
    assert layers and all(f[k] == "4->3" for k in layers)
    assert all(f[k.replace("heads.", "head_survivors.")] == 3 for k in layers)
    assert all(float(f[k.replace("heads.", "head_match_r.")]) > 0.9 for k in layers)
    assert not [x for x in r.reasons if x.kind == "not_comparable" and x.role == "attn"]


def test_hidden_pruning_decides_when_nothing_keeps_its_shape(shapes: dict[str, Path]) -> None:
    r = audit(shapes["base"], shapes["hidden+ffn pruned"])
    assert r.verdict == "derived", [x.statement for x in r.reasons[:3]]
    f = kind(r, "width_pruned").figures
    assert f["hidden_a"] == 64 and f["hidden_b"] == 48
    assert float(f["hidden_match_r"]) > 0.9 and float(f["hidden_null"]) < 0.3
    assert r.reasons[0].kind == "width"  # the decisive reason leads
    assert all(f[k] == "4->4" for k in f if k.startswith("heads."))  # heads over 48 dims
    sliced = {x.role: x for x in r.reasons if x.kind == "width_sliced"}
    assert set(sliced) == {"norm", "lm_head"} and all(
        x.strength == "strong" for x in sliced.values()
    )
    assert not [x for x in r.reasons if x.kind == "not_comparable"]  # every change compared


def test_moe_upcycling_matches_every_expert(shapes: dict[str, Path]) -> None:
    r = audit(shapes["base"], shapes["moe upcycled"])
    assert r.verdict == "derived"
    f = kind(r, "moe_upcycled").figures
    assert f["experts_tested"] == 16 and f["experts_from_a"] == 16
    per_expert = [float(v) for k, v in f.items() if k.startswith("expert.")]
    assert len(per_expert) == 16 and min(per_expert) > 0.9
    assert abs(float(f["cross_layer_median"])) < 0.1
    assert not [x for x in r.reasons if x.kind == "not_comparable" and x.role == "expert"]


def test_fine_grained_experts_are_assigned_to_a_units(shapes: dict[str, Path]) -> None:
    r = audit(shapes["base"], shapes["moe fine-grained"])
    assert r.verdict == "derived"
    f = kind(r, "moe_upcycled").figures
    assert f["partition"] == "fine-grained" and f["units_per_expert"] == 32
    assert f["experts_from_a"] == f["experts_tested"] == 16
    survivors = [v for k, v in f.items() if k.endswith(".survivors")]
    assert len(survivors) == 16 and min(int(v) for v in survivors) >= 30  # of 32 units each


def test_noise_added_is_named_and_fine_tune_is_not_noise(shapes: dict[str, Path]) -> None:
    r = audit(shapes["base"], shapes["noise added"])
    f = kind(r, "noise_added").figures
    assert float(f["rank90_vs_gaussian"]) > 0.9
    ft = audit(shapes["base"], shapes["finetune"])
    assert float(kind(ft, "fine_tune").figures["rank90_vs_gaussian"]) < 0.9


def test_depth_upscaled_solar_style(shapes: dict[str, Path]) -> None:
    r = audit(shapes["base"], shapes["depth up-scaled"])
    assert r.verdict == "derived"
    f = kind(r, "depth_upscaled").figures
    assert f["layers_a"] == 4 and f["layers_b"] == 6
    assert all((p.score or 0) > 0.9 for p in r.layer_map)  # every A layer found its copy


@pytest.mark.parametrize(
    "name",
    [
        "indep. vocab extended",
        "indep. vocab shifted",
        "indep. hidden+ffn pruned",
        "indep. moe",
        "indep. moe fine-grained",
        "indep. layers reordered",
        "indep. vocab reordered",
    ],
)
def test_independent_models_with_changed_shapes_are_not_derived(
    shapes: dict[str, Path], name: str
) -> None:
    r = audit(shapes["base"], shapes[name])
    assert r.verdict != "derived", [x.statement for x in r.reasons[:3]]
    shape_kinds = {"vocabulary_extended", "width_pruned", "moe_upcycled", "vocabulary_reordered"}
    shape_kinds |= {"layers_reordered", "fine_tune"}
    assert not shape_kinds & {d.kind for d in r.derivation}
    tests = [x for x in r.reasons if x.kind in ("vocabulary", "width", "upcycle")]
    if name != "indep. layers reordered":  # no shape changed there: nothing to align
        assert tests and all(x.strength == "info" for x in tests)  # compared, inside the null
    if r.verdict == "inconclusive":  # nothing kept its shape: said so, with the next step
        assert r.reasons[0].kind == "shapes_only" and "Next step" in r.reasons[0].statement


CLI_KINDS = [
    ("vocab extended", "vocabulary_extended"),
    ("depth up-scaled", "depth_upscaled"),
    ("noise added", "noise_added"),
    ("layers reordered", "layers_reordered"),
    ("pruned + reordered", "depth_pruned"),
    ("vocab reordered + extended", "vocabulary_extended"),
]


@pytest.mark.parametrize(("b", "want"), CLI_KINDS)
def test_cli_json_names_the_shape_derivations(shapes: dict[str, Path], b: str, want: str) -> None:
    args = ["audit", str(shapes["base"]), str(shapes[b]), "--json", "--no-store"]
    proc = subprocess.run(
        [sys.executable, "-m", "companion", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "derived"
    found = {d["kind"]: d for d in data["derivation"]}
    assert want in found and found[want]["figures"] and found[want]["confidence"]


def test_the_same_tokenizer_beside_both_is_not_a_vocabulary_change(shapes: dict[str, Path]) -> None:
    synth_shapes.write_tokenizer(shapes["finetune"], synth_shapes.tokens(SPEC.vocab))
    r = audit(shapes["base"], shapes["finetune"])
    assert r.verdict == "derived"
    assert not [x for x in r.reasons if x.kind == "vocabulary"]
    assert not {"vocabulary_extended", "vocabulary_reordered"} & {d.kind for d in r.derivation}
