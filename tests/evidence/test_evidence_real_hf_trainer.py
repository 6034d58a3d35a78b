"""The real `transformers` Trainer writes `trainer_state.json`; companion reads it.

A one-layer GPT-2 is built from a config in code (nothing downloaded) and trained for a few
steps on random tokens with `logging_steps=1`, so the logged first loss is that of random
weights: ≈ ln V. The Trainer divides each batch's summed loss by the number of label tokens
before the causal shift (L tokens per row, L - 1 predicted), so its first loss sits at
ln V · (L - 1) / L; with L = 64 that is within 0.1 nat of ln V.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from companion.evidence.detect import read_log
from companion.toolbox import run_tool
from companion.tools import ToolContext

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

VOCAB = 512
SEQ = 64
STEPS = 12


class RandomTokens(torch.utils.data.Dataset):  # type: ignore[misc]
    """Uniform random token rows: nothing to learn but the (uniform) unigram."""

    def __init__(self, rows: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, VOCAB, (rows, SEQ), generator=gen)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> dict[str, object]:
        return {"input_ids": self.x[i], "labels": self.x[i]}


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Trainer run's output folder: trainer_state.json and the model's config.json."""
    out = tmp_path_factory.mktemp("hf_trainer")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB, n_positions=SEQ
    )
    model = transformers.GPT2LMHeadModel(config)
    args = transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=STEPS,
        logging_steps=1,
        report_to=[],
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        warmup_steps=3,
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=RandomTokens(64))
    trainer.train()
    trainer.state.save_to_json(str(out / "trainer_state.json"))
    model.config.save_pretrained(str(out))
    return out


def test_real_trainer_state_is_read_with_the_first_loss_at_ln_v(hf_run: Path) -> None:
    state = json.loads((hf_run / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS and state["log_history"][0]["step"] == 1
    log = read_log(hf_run / "trainer_state.json")
    assert len(log.series) == STEPS
    assert list(log.series.step[:3]) == [1, 2, 3]
    first = float(log.series.loss[0])
    assert first == pytest.approx(state["log_history"][0]["loss"], rel=1e-9)
    assert abs(first - math.log(VOCAB)) < 0.15
    assert first == pytest.approx(math.log(VOCAB) * (SEQ - 1) / SEQ, abs=0.05)
    assert log.grad_norms and log.grad_norms[0][0] == 1


def test_real_trainer_state_verdict_is_from_scratch(hf_run: Path) -> None:
    args = {"paths": [str(hf_run / "trainer_state.json")]}
    out = run_tool("evidence.summarize", args, ToolContext(roots=[hf_run])).model_dump(mode="json")
    assert out["verdict"] == "from_scratch"
    assert out["vocab_size"] == VOCAB and "config.json" in str(out["vocab_source"])
    initial = next(f for f in out["findings"] if f["name"] == "initial_loss")
    assert initial["direction"] == "from_scratch"
