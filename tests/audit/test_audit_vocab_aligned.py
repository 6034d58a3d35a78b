"""A changed vocabulary does not hide a fine-tune: the hidden alignment reads embedding rows
through the vocabulary's row map, so the dense delta is measured and named.

Real folders (safetensors + config.json + tokenizer.json) written by companion.audit.synth /
synth_shapes, audited through the registered tool.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.audit_checkpoints import audit, kind

from companion.audit import synth, synth_shapes

SPEC = synth.Spec()
DELTA_KINDS = {"fine_tune", "lora_merged", "noise_added"}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A with its tokenizer; B's with reordered, extended or shifted vocabularies."""
    root = tmp_path_factory.mktemp("vocab")
    w = synth.base(SPEC, 0)
    ft = synth.finetune(w, seed=1, update=0.1, noise=0.1)
    out = {"base": synth.save(root / "base", w, SPEC), "ft": synth.save(root / "ft", ft, SPEC)}
    synth_shapes.write_tokenizer(out["base"], synth_shapes.tokens(SPEC.vocab))
    synth_shapes.write_tokenizer(out["ft"], synth_shapes.tokens(SPEC.vocab))
    for name, weights in (("reordered ft", ft), ("reordered same", w)):
        x, order = synth_shapes.vocab_reordered(weights, SPEC)
        out[name] = synth.save(root / name.replace(" ", "_"), x, SPEC)
        synth_shapes.write_tokenizer(out[name], order)
    x, order = synth_shapes.vocab_reordered(ft, SPEC, seed=21)
    x, s = synth_shapes.vocab_extended(x, SPEC, 32)
    out["reordered+extended ft"] = synth.save(root / "reordered_extended", x, s)
    new = {f"new{j}": SPEC.vocab + j for j in range(32)}
    synth_shapes.write_tokenizer(out["reordered+extended ft"], {**order, **new})
    x, s = synth_shapes.vocab_shifted(ft, SPEC, 5)
    out["shifted ft (no tok)"] = synth.save(root / "shifted", x, s)
    x, order = synth_shapes.vocab_reordered(synth.base(SPEC, 100), SPEC)
    out["independent shuffled"] = synth.save(root / "independent", x, SPEC)
    synth_shapes.write_tokenizer(out["independent shuffled"], order)
    return out


@pytest.mark.parametrize(
    ("name", "vocab_kind", "paired"),
    [
        ("reordered ft", "vocabulary_reordered", "tokens"),
        ("reordered+extended ft", "vocabulary_extended", "tokens"),
        ("shifted ft (no tok)", "vocabulary_extended", "IDs"),
    ],
)
def test_changed_vocabulary_and_fine_tune_are_both_named(
    pairs: dict[str, Path], name: str, vocab_kind: str, paired: str
) -> None:
    r = audit(pairs["base"], pairs[name])
    assert r.verdict == "derived"
    kind(r, vocab_kind)
    # the delta is the fine-tune's own: the same figures as the same fine-tune, vocabulary kept
    assert (
        kind(r, "fine_tune").figures == kind(audit(pairs["base"], pairs["ft"]), "fine_tune").figures
    )
    assert r.aligned is not None and r.aligned.hidden is not None
    assert r.aligned.hidden.moved == 0 and r.aligned.hidden.one_to_one == SPEC.hidden
    assert f"paired by {paired}" in r.aligned.hidden.source


def test_reordered_vocabulary_without_a_delta_names_no_fine_tune(pairs: dict[str, Path]) -> None:
    r = audit(pairs["base"], pairs["reordered same"])
    assert r.verdict == "derived"
    assert float(kind(r, "vocabulary_reordered").figures["row_pearson"]) > 0.99
    assert not DELTA_KINDS & {d.kind for d in r.derivation}
    assert r.aligned is not None and all(d.rel_l2 == 0 for d in r.aligned.deltas)


def test_independent_model_with_a_shuffled_vocabulary_is_independent(
    pairs: dict[str, Path],
) -> None:
    r = audit(pairs["base"], pairs["independent shuffled"])
    assert r.verdict == "independent", [x.statement for x in r.reasons[:3]]
    assert {d.kind for d in r.derivation} == {"independent"}
    vocab = [x for x in r.reasons if x.kind == "vocabulary"]
    assert vocab and all(x.strength == "info" for x in vocab)  # compared, inside the null
    assert r.aligned is not None and r.aligned.hidden is not None
    assert "paired by tokens" in r.aligned.hidden.source and r.aligned.hidden.z < 5
