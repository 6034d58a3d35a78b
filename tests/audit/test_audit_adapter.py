"""LoRA adapter folders written by PEFT itself: fit to a base, alignment, BASE+ADAPTER merges.

The fixture trains a tiny Llama (transformers) on this repository's README for a few hundred
steps, trains a LoRA on it with PEFT, and saves base, adapter and PEFT's own merged model
(`merge_and_unload`); a second base of the same shapes is trained from another seed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from companion.audit import synth
from companion.audit.adapter import AdapterPair, open_adapter
from companion.audit.adapter_merge import open_source
from companion.audit.safetensors import decode
from companion.audit.schemas import AuditResult
from companion.audit.synth_adapter import write_adapter
from companion.errors import InputError
from companion.toolbox import run_tool
from companion.tools import ToolContext

REPO = Path(__file__).resolve().parents[2]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"]


def _train(model: Any, steps: int, lr: float, seed: int) -> None:
    """A few AdamW steps of next-byte prediction on the README."""
    import torch

    data = torch.tensor(list((REPO / "README.md").read_bytes()), dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - 33, (8,), generator=g)
        x = torch.stack([data[int(i) : int(i) + 32] for i in starts])
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()


def _llama(hidden: int, inter: int) -> Any:
    """A tiny Llama of these widths."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=256,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
    )
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def peft_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """base, other (same shapes), adapter (trained on base), merged (PEFT's), untrained, narrow."""
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("peft")
    base = _llama(64, 128)
    _train(base, 200, 3e-3, 1)
    base.save_pretrained(root / "base")
    other = _llama(64, 128)
    _train(other, 200, 3e-3, 7)
    other.save_pretrained(root / "other")
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS)
    untrained = peft.get_peft_model(_llama(64, 128), lora)
    untrained.save_pretrained(root / "untrained")
    narrow = peft.get_peft_model(_llama(48, 96), lora)
    narrow.save_pretrained(root / "narrow")
    model = peft.get_peft_model(base, lora)
    _train(model, 150, 1e-2, 3)
    model.save_pretrained(root / "adapter")
    model.merge_and_unload().save_pretrained(root / "merged")
    return {p.name: p for p in root.iterdir()}


def audit(a: str, b: str, **kw: Any) -> AuditResult:
    """Run the audit tool as every front door does."""
    r = run_tool("audit.compare", {"a": a, "b": b, **kw}, ToolContext())
    assert isinstance(r, AuditResult)
    return r


def test_peft_layout_is_parsed(peft_case: dict[str, Path], tmp_path: Path) -> None:
    adapter = open_adapter(peft_case["adapter"])
    try:
        assert len(adapter.modules) == 2 * len(TARGETS)
        m = next(m for m in adapter.modules if m.module.endswith("layers.0.self_attn.q_proj"))
        assert (m.rank, m.scaling, m.transposed) == (4, 2.0, False)  # lora_alpha / r
        assert m.a == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    finally:
        adapter.close()
    rs = tmp_path / "rslora"
    shutil.copytree(peft_case["adapter"], rs)
    cfg = json.loads((rs / "adapter_config.json").read_text())
    cfg.update(use_rslora=True, alpha_pattern={"up_proj": 16})
    (rs / "adapter_config.json").write_text(json.dumps(cfg))
    adapter = open_adapter(rs)
    try:
        scal = {m.module.rsplit(".", 1)[-1]: m.scaling for m in adapter.modules}
        assert scal["q_proj"] == 8 / 2 and scal["up_proj"] == 16 / 2  # alpha / sqrt(r)
    finally:
        adapter.close()


def _tensors(path: Path | AdapterPair) -> dict[str, np.ndarray[Any, Any]]:
    """Every tensor of a checkpoint through companion's own readers, as float64."""
    ckpt = open_source(path, None)
    try:
        return {
            n: np.asarray(decode(r.file.read(n), np.float64)).reshape(r.info.shape)
            for n, r in ckpt.tensors.items()
        }
    finally:
        ckpt.close()


def test_streamed_merge_equals_peft_merge_and_unload(peft_case: dict[str, Path]) -> None:
    ours = _tensors(AdapterPair(peft_case["base"], peft_case["adapter"]))
    theirs = _tensors(peft_case["merged"])
    base = _tensors(peft_case["base"])
    assert ours.keys() == theirs.keys()
    changed = [n for n in ours if not np.array_equal(base[n], theirs[n])]
    assert len(changed) == 2 * len(TARGETS)
    for n in ours:
        np.testing.assert_allclose(ours[n], theirs[n], rtol=0, atol=1e-6)


def test_audit_base_plus_adapter_as_b(peft_case: dict[str, Path]) -> None:
    base = str(peft_case["base"])
    pair = audit(base, f"{base}+{peft_case['adapter']}")
    peft_merged = audit(base, str(peft_case["merged"]))
    assert pair.verdict == peft_merged.verdict == "derived"
    assert pair.b.endswith("+" + str(peft_case["adapter"]))
    ours = {t.name_a: t.metrics.rel_l2 for t in pair.per_tensor}
    theirs = {t.name_a: t.metrics.rel_l2 for t in peft_merged.per_tensor}
    assert ours.keys() == theirs.keys()
    assert all(abs((ours[n] or 0) - (theirs[n] or 0)) < 1e-6 for n in ours)
    assert "lora_merged" in [d.kind for d in pair.derivation]
    inputs = {Path(i.path).name for i in pair.manifest.inputs}
    assert {"adapter_config.json", "adapter_model.safetensors", "model.safetensors"} <= inputs


def test_adapter_fits_and_aligns_with_its_own_base(peft_case: dict[str, Path]) -> None:
    r = audit(str(peft_case["base"]), str(peft_case["adapter"]))
    assert r.verdict == "derived"
    assert r.reasons[0].kind == "adapter_alignment" and r.reasons[0].strength == "strong"
    d = r.derivation[0]
    assert d.kind == "lora_adapter" and d.figures["modules"] == 14 and d.figures["rank"] == 4
    assert float(d.figures["alignment_z"]) >= 5 and float(d.figures["alignment_p"]) <= 0.01
    assert "not evidence against" not in r.to_markdown()


def test_adapter_against_an_unrelated_base_is_inconclusive(peft_case: dict[str, Path]) -> None:
    r = audit(str(peft_case["other"]), str(peft_case["adapter"]))
    assert r.verdict == "inconclusive"  # fits, no alignment: never "independent"
    assert r.reasons[0].kind == "adapter_alignment" and r.reasons[0].strength == "weak"
    assert float(r.derivation[0].figures["alignment_z"]) < 3


def test_untrained_adapter_says_so(peft_case: dict[str, Path]) -> None:
    r = audit(str(peft_case["base"]), str(peft_case["untrained"]))
    assert r.verdict == "inconclusive"
    untrained = next(x for x in r.reasons if x.kind == "adapter_untrained")
    assert untrained.statement.startswith("14 modules have an all-zero lora_B")


def test_misfit_adapter_names_module_shapes_and_next_step(peft_case: dict[str, Path]) -> None:
    base, narrow = str(peft_case["base"]), str(peft_case["narrow"])
    for b in (narrow, f"{base}+{narrow}"):
        with pytest.raises(InputError) as err:
            audit(base, b)
        msg = str(err.value)
        assert "model.layers.0.mlp.down_proj does not fit" in msg
        assert "[64, 128]" in msg and "[48, 4] x lora_A [4, 96]" in msg
        assert "audit it against that base" in (err.value.hint or "")


def test_adapter_as_a_is_a_clear_error(peft_case: dict[str, Path]) -> None:
    base, adapter = str(peft_case["base"]), str(peft_case["adapter"])
    for a, b, extra in ((adapter, base, {}), (base, base, {"baseline": adapter})):
        with pytest.raises(InputError) as err:
            audit(a, b, **extra)
        assert "is a LoRA adapter folder" in str(err.value)
        assert "companion audit BASE ADAPTER" in (err.value.hint or "")


def test_cli_plus_syntax_and_misfit_exit_code(peft_case: dict[str, Path]) -> None:
    base = str(peft_case["base"])
    pair = f"{base}+{peft_case['adapter']}"
    ok = subprocess.run(
        [sys.executable, "-m", "companion", "audit", base, pair, "--json", "--no-store"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verdict"] == "derived"
    bad = subprocess.run(
        [sys.executable, "-m", "companion", "audit", base, str(peft_case["narrow"]), "--no-store"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "does not fit" in bad.stderr and "Traceback" not in bad.stderr


def test_synthetic_writer_is_the_layout_peft_loads(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    from transformers import LlamaForCausalLM

    spec = synth.Spec(layers=2)
    w = synth.base(spec, 0)
    synth.save(tmp_path / "base", w, spec)
    write_adapter(tmp_path / "adapter", w, seed=3)
    model = LlamaForCausalLM.from_pretrained(tmp_path / "base", torch_dtype=torch.float32)
    merged = peft.PeftModel.from_pretrained(model, tmp_path / "adapter").merge_and_unload()
    theirs = {k: v.detach().numpy() for k, v in merged.state_dict().items()}
    ours = _tensors(AdapterPair(tmp_path / "base", tmp_path / "adapter"))
    for name in ("model.layers.1.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight"):
        assert not np.allclose(theirs[name], w[name])  # the adapter changed it
        np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=1e-6)


def test_embedding_lora_and_modules_to_save_merge_like_peft(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    torch.manual_seed(5)
    base = _llama(64, 128)
    base.save_pretrained(tmp_path / "base")
    lora = peft.LoraConfig(
        r=2, lora_alpha=6, target_modules=["embed_tokens", "o_proj"], modules_to_save=["lm_head"]
    )
    model = peft.get_peft_model(base, lora)
    with torch.no_grad():  # PEFT starts one factor at zero: give both values, and a new head
        for name, p in model.named_parameters():
            if "lora_" in name or "modules_to_save" in name:
                p.normal_(0.0, 0.05)
    model.save_pretrained(tmp_path / "adapter")
    model.merge_and_unload().save_pretrained(tmp_path / "merged")
    adapter = open_adapter(tmp_path / "adapter")
    try:
        emb = next(m for m in adapter.modules if m.embedding)
        assert emb.transposed and emb.scaling == 3.0
        assert set(adapter.replacements) >= {"lm_head.weight", "model.embed_tokens.weight"}
    finally:
        adapter.close()
    ours = _tensors(AdapterPair(tmp_path / "base", tmp_path / "adapter"))
    theirs = _tensors(tmp_path / "merged")
    assert ours.keys() == theirs.keys()
    for n in ours:
        np.testing.assert_allclose(ours[n], theirs[n], rtol=0, atol=1e-6)


def test_refused_adapter_kinds_say_what_to_do(peft_case: dict[str, Path], tmp_path: Path) -> None:
    for key, value in (("use_dora", True), ("peft_type", "IA3")):
        folder = tmp_path / key
        shutil.copytree(peft_case["adapter"], folder)
        cfg = json.loads((folder / "adapter_config.json").read_text())
        cfg[key] = value
        (folder / "adapter_config.json").write_text(json.dumps(cfg))
        with pytest.raises(InputError) as err:
            audit(str(peft_case["base"]), f"{peft_case['base']}+{folder}")
        assert ("DoRA" in str(err.value)) or ("IA3" in str(err.value))
        assert "merge_and_unload" in (err.value.hint or "")


def test_verify_reproduces_both_adapter_modes(peft_case: dict[str, Path], tmp_path: Path) -> None:
    env = {**os.environ, "COMPANION_HOME": str(tmp_path / "home")}
    base = str(peft_case["base"])
    for b in (str(peft_case["adapter"]), f"{base}+{peft_case['adapter']}"):
        saved = tmp_path / "result.json"
        run = [sys.executable, "-m", "companion", "audit", base, b, "--json"]
        done = subprocess.run(run, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        saved.write_text(done.stdout)
        check = [sys.executable, "-m", "companion", "verify", str(saved)]
        again = subprocess.run(check, capture_output=True, text=True, timeout=300, env=env)
        assert again.returncode == 0 and "reproduced" in again.stdout, again.stdout + again.stderr


def test_alignment_null_is_calibrated_on_adapters_unrelated_to_their_base(tmp_path: Path) -> None:
    """Random factors carry no trace of W: the combined p is uniform and nothing is derived."""
    from scipy.stats import kstest

    spec = synth.Spec(layers=2)
    ps, derived = [], 0
    for seed in range(40):
        w = synth.base(spec, 1000 + seed)
        base = synth.save(tmp_path / f"b{seed}", w, spec)
        folder = write_adapter(tmp_path / f"a{seed}", w, seed=seed, rank=2 + seed % 4)
        r = audit(str(base), str(folder))
        ps.append(float(r.derivation[0].figures["alignment_p"]))
        derived += r.verdict == "derived"
    assert derived == 0
    assert kstest(ps, "uniform").pvalue > 0.01


def test_merged_tensor_streams_in_chunks_without_holding_it(tmp_path: Path) -> None:
    """Reading an adapted tensor chunk by chunk (as the audit does) never holds it whole."""
    import tracemalloc

    spec = synth.Spec(vocab=256, hidden=512, layers=1, heads=8, intermediate=2048)
    w = synth.base(spec, 0)
    pair = AdapterPair(synth.save(tmp_path / "base", w, spec), tmp_path / "adapter")
    write_adapter(pair.adapter, w, seed=1, rank=8)
    name = "model.layers.0.mlp.up_proj.weight"
    ckpt = open_source(pair, None)
    try:
        ref = ckpt.tensors[name]
        chunk = 1 << 16
        buf = np.empty(chunk * 4, dtype=np.uint8)
        whole = np.empty(ref.info.numel, dtype=np.float32)
        tracemalloc.start()
        try:
            for start in range(0, ref.info.numel, chunk):
                part = ref.file.read_into(ref.info, start, chunk, buf)
                whole[start : start + chunk] = part
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        ckpt.close()
    assert peak < ref.info.numel * 4 // 2  # under half the tensor in float32
    expected = _tensors(pair)[name]
    np.testing.assert_array_equal(whole.reshape(ref.info.shape), expected.astype(np.float32))
