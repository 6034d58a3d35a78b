"""K/V heads regrouped (MHA -> GQA by mean-pooling, K/V heads removed) and head_dim changes.

Every pair is a real folder of safetensors + config.json written by
companion.audit.synth_shapes, audited through the registered tool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.audit_checkpoints import audit

from companion.audit import synth, synth_shapes
from companion.audit.kvheads import label
from companion.audit.schemas import AuditResult, Derivation

SPEC = synth.Spec()
WIDE = synth.Spec(heads=8)  # head_dim 8: room for 8 -> 2 groups of 4


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Base A (4 heads, and an 8-head one) and every regrouped B, derived and independent."""
    root = tmp_path_factory.mktemp("kv")
    w, w8 = synth.base(SPEC, 0), synth.base(WIDE, 0)
    ft = synth.finetune(w, seed=1, update=0.1, noise=0.1)
    out: dict[str, Any] = {"base": synth.save(root / "a", w, SPEC)}
    out["base8"] = synth.save(root / "a8", w8, WIDE)

    def put(name: str, x: synth.Weights, cfg: dict[str, Any], spec: synth.Spec = SPEC) -> None:
        out[name] = synth_shapes.save_with(root / name, x, spec, cfg)

    put("pooled", *synth_shapes.kv_pooled(w, SPEC, 2))
    put("pooled 8->2", *synth_shapes.kv_pooled(w8, WIDE, 2), WIDE)
    put("gqa base", *synth_shapes.kv_pooled(w8, WIDE, 4), WIDE)  # A already GQA (8 / 4)
    four = synth.Spec(hidden=32, heads=4)  # kv_pooled's view of 4 kept heads of width 8
    for name, src in (("q pruned, pooled", w8), ("indep. q pruned, pooled", synth.base(WIDE, 9))):
        x, c1 = synth_shapes.heads_pruned(synth.finetune(src, 1, update=0.1, noise=0.1), WIDE, 4)
        x, c2 = synth_shapes.kv_pooled(x, four, 2)
        put(name, x, {**c1, **c2}, WIDE)
    x, cfg = synth_shapes.kv_pooled(w, SPEC, 2)
    put("pooled then fine-tuned", synth.finetune(x, seed=4, update=0.1, noise=0.1), cfg)
    put("pooled, hidden permuted", *synth_shapes.kv_pooled(synth.hidden_permuted(ft), SPEC, 2))
    x, narrow, cfg = synth_shapes.width_pruned(ft, SPEC, 96, hidden=48)
    x, more = synth_shapes.kv_pooled(x, SPEC, 2)
    put("pooled, hidden pruned", x, {**cfg, **more}, narrow)
    gqa, cfg = synth_shapes.kv_pooled(w, SPEC, 2)
    put("gqa a", gqa, cfg)
    put(
        "repeated to mha",
        *synth_shapes.kv_repeated(synth.finetune(gqa, 2, update=0.1, noise=0.1), SPEC),
    )
    x, cfg, out["kept"] = synth_shapes.kv_pruned(ft, SPEC, 2)
    put("kv pruned", x, cfg)
    x, cfg, out["channels"] = synth_shapes.head_dim_pruned(ft, SPEC, 12)
    put("head_dim 16->12", x, cfg)
    narrow = synth.Spec(hidden=48)  # head_dim 12: heads_pruned's view of the pruned rows
    y, more = synth_shapes.heads_pruned(x, narrow, 3)
    put("heads and head_dim pruned", y, {**cfg, **more})
    for seed in (200, 201, 202, 203, 204):
        ind = synth.base(SPEC, seed)
        put(f"indep. pooled {seed}", *synth_shapes.kv_pooled(ind, SPEC, 2))
        x, cfg, _ = synth_shapes.kv_pruned(ind, SPEC, 1, seed=seed)
        put(f"indep. mqa {seed}", x, cfg)
        x, cfg, _ = synth_shapes.head_dim_pruned(ind, SPEC, 12, seed=seed)
        put(f"indep. head_dim {seed}", x, cfg)
    return out


def pruned(r: AuditResult) -> Derivation:
    """The width_pruned derivation (fails with the kinds and leading reasons found)."""
    found = [d for d in r.derivation if d.kind == "width_pruned"]
    assert found, ([d.kind for d in r.derivation], [x.statement for x in r.reasons[:4]])
    return found[0]


def kv_layers(f: dict[str, Any]) -> list[str]:
    """The layers the K/V test ran on."""
    layers = [k.split(".", 1)[1] for k in f if k.startswith("kv_heads.")]
    assert layers, f
    return layers


def no_attn_gap(r: AuditResult) -> None:
    """The regrouped attention tensors were compared: no not-comparable attention reason."""
    assert not [x for x in r.reasons if x.kind == "not_comparable" and x.role == "attn"]


@pytest.mark.parametrize(
    ("name", "a", "detail", "groups"),
    [
        ("pooled", "base", "kv heads 4→2 by mean-pooling groups of 2", "0-1,2-3"),
        ("pooled 8->2", "base8", "kv heads 8→2 by mean-pooling groups of 4", "0-3,4-7"),
        ("pooled 8->2", "gqa base", "kv heads 4→2 by mean-pooling groups of 2", "0-1,2-3"),
        ("pooled then fine-tuned", "base", "kv heads 4→2 by mean-pooling groups of 2", "0-1,2-3"),
        ("pooled, hidden permuted", "base", "kv heads 4→2 by mean-pooling groups of 2", "0-1,2-3"),
        ("pooled, hidden pruned", "base", "kv heads 4→2 by mean-pooling groups of 2", "0-1,2-3"),
    ],
)
def test_mha_to_gqa_by_mean_pooling_is_named_with_its_map(
    pairs: dict[str, Any], name: str, a: str, detail: str, groups: str
) -> None:
    r = audit(pairs[a], pairs[name])
    assert r.verdict == "derived"
    d = pruned(r)
    f = d.figures
    assert f["kv_detail"] == detail and detail in d.statement
    for layer in kv_layers(f):
        assert f[f"kv_map.{layer}"] == groups
        assert f[f"kv_survivors.{layer}"] == len(groups.split(","))
        assert float(f[f"kv_match_r.{layer}"]) > 0.9 > 0.3 > float(f[f"kv_null_r.{layer}"])
    width = next(x for x in r.reasons if x.kind == "width")
    role = "mlp" if "hidden pruned" in name else "attn"  # MLP units are matched there too
    assert width.strength == "strong" and width.role == role and "K/V heads" in width.statement
    no_attn_gap(r)


def test_kv_heads_pruned_maps_each_b_head_to_the_a_head_kept(pairs: dict[str, Any]) -> None:
    r = audit(pairs["base"], pairs["kv pruned"])
    assert r.verdict == "derived"
    f = pruned(r).figures
    assert f["kv_detail"] == "kv heads 4→2 by keeping 2 of A's heads"
    for layer in kv_layers(f):
        assert f[f"kv_map.{layer}"] == ",".join(str(h) for h in pairs["kept"][int(layer)])
        assert float(f[f"kv_match_r.{layer}"]) > 0.9
    no_attn_gap(r)


def test_gqa_expanded_to_mha_maps_every_copy(pairs: dict[str, Any]) -> None:
    r = audit(pairs["gqa a"], pairs["repeated to mha"])
    assert r.verdict == "derived"
    width = next(x for x in r.reasons if x.kind == "width")
    assert width.strength == "strong" and "K/V heads 2 -> 4" in width.statement
    assert "(A's head or group mean for each: 0, 0, 1, 1)" in width.statement
    assert "width_pruned" not in {d.kind for d in r.derivation}  # nothing was removed


def test_q_heads_pruned_then_kv_pooled_maps_each_pool_to_the_surviving_heads(
    pairs: dict[str, Any],
) -> None:
    r = audit(pairs["base8"], pairs["q pruned, pooled"])
    assert r.verdict == "derived"
    f = pruned(r).figures
    assert f["kv_detail"] == "kv heads 8→2 by mean-pooling groups of 2"
    for layer in kv_layers(f):
        kept = [int(h) for h in synth_shapes.heads_kept(WIDE, 4)[int(layer)]]
        assert f[f"heads.{layer}"] == "8->4" and f[f"head_survivors.{layer}"] == 4
        assert f[f"kv_map.{layer}"] == f"{label(kept[:2])},{label(kept[2:])}"  # not aligned
    ind = audit(pairs["base8"], pairs["indep. q pruned, pooled"])
    assert ind.verdict != "derived" and "width_pruned" not in {d.kind for d in ind.derivation}


@pytest.mark.parametrize("seed", [200, 201, 202, 203, 204])
@pytest.mark.parametrize("form", ["pooled", "mqa"])
def test_independent_gqa_against_mha_is_not_derived(
    pairs: dict[str, Any], seed: int, form: str
) -> None:
    r = audit(pairs["base"], pairs[f"indep. {form} {seed}"])
    assert r.verdict != "derived", [x.statement for x in r.reasons[:3]]
    assert "width_pruned" not in {d.kind for d in r.derivation}
    width = [x for x in r.reasons if x.kind == "width"]
    assert len(width) == 1 and width[0].strength == "info"  # compared, inside the null
    assert "K/V heads" in width[0].statement


def test_head_dim_pruned_names_the_surviving_channels(pairs: dict[str, Any]) -> None:
    r = audit(pairs["base"], pairs["head_dim 16->12"])
    assert r.verdict == "derived"
    d = pruned(r)
    f = d.figures
    layers = [k.split(".", 1)[1] for k in f if k.startswith("head_dim.")]
    assert layers and all(f[f"head_dim.{k}"] == "16->12" for k in layers)
    for layer in layers:
        kept = ",".join(str(c) for c in pairs["channels"][int(layer)])
        for part in ("qk", "vo"):
            assert f[f"{part}_head0.{layer}"] == kept  # B's head-0 channels are A's kept ones
            assert f[f"{part}_survivors.{layer}"] == f[f"{part}_same_head.{layer}"] == 48
            assert (
                float(f[f"{part}_match_r.{layer}"]) > 0.9 > 0.5 > float(f[f"{part}_null_r.{layer}"])
            )
    assert "head_dim 16→12" in str(f["head_dim_detail"]) and "head_dim 16→12" in d.statement
    no_attn_gap(r)


@pytest.mark.parametrize("seed", [200, 201, 202, 203, 204])
def test_independent_head_dim_change_is_not_derived(pairs: dict[str, Any], seed: int) -> None:
    r = audit(pairs["base"], pairs[f"indep. head_dim {seed}"])
    assert r.verdict != "derived", [x.statement for x in r.reasons[:3]]
    assert "width_pruned" not in {d.kind for d in r.derivation}
    width = [x for x in r.reasons if x.kind == "width"]
    assert len(width) == 1 and width[0].strength == "info" and "QK channels" in width[0].statement


def test_heads_and_head_dim_changed_together_is_a_specific_not_comparable_reason(
    pairs: dict[str, Any],
) -> None:
    r = audit(pairs["base"], pairs["heads and head_dim pruned"])
    assert r.verdict == "derived"  # decided by what kept its shape
    attn = [x for x in r.reasons if x.kind == "not_comparable" and x.role == "attn"]
    assert len(attn) == 1, [x.statement for x in attn]
    said = attn[0].statement
    assert "head_dim 16→12" in said and "per-head channel survival is not tested" in said
    assert "Next step" in said
    assert not any(k.startswith(("heads.", "head_dim.")) for d in r.derivation for k in d.figures)


def test_large_layers_test_the_first_heads_and_channels_within_the_raw_budget(
    pairs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w8 = synth.base(WIDE, 0)
    x, cfg = synth_shapes.kv_pooled(w8, WIDE, 4)
    b = synth_shapes.save_with(tmp_path / "b", x, WIDE, cfg)
    monkeypatch.setattr("companion.audit.sketch.KEEP", 8 * 64 * 2)  # two K/V heads' rows
    f = pruned(audit(pairs["base8"], b)).figures
    assert f["kv_detail"] == "kv heads 8→4 by mean-pooling groups of 2 (B's first 2 heads tested)"
    assert all(f[f"kv_map.{k}"] == "0-1,2-3" for k in kv_layers(f))  # B's first two heads
    monkeypatch.setattr("companion.audit.sketch.KEEP", 64 * 20)  # 20 of B's 48 channels
    f = pruned(audit(pairs["base"], pairs["head_dim 16->12"])).figures
    layers = [k.split(".", 1)[1] for k in f if k.startswith("head_dim.")]
    assert layers and all(f[f"qk_survivors.{k}"] == f[f"vo_survivors.{k}"] == 20 for k in layers)
    assert all(f[f"qk_head0.{k}"] == ",".join(map(str, pairs["channels"][int(k)])) for k in layers)
