"""Which logged metric is the training loss, the learning rate, the token counter."""

from __future__ import annotations

from collections.abc import Iterable

_EXACT_LOSS = {
    "loss",
    "train/loss",
    "train_loss",
    "lm loss",
    "lm_loss",
    "train/lm_loss",
    "train/lm loss",
    "lm-loss-training/lm loss",
    "reduced_train_loss",
    "train/reduced_train_loss",
    "training_loss",
    "train/train_loss",
}
_EVAL_WORDS = ("val", "eval", "test", "valid", "dev/")
_NOT_LM = ("scale", "aux", "z_loss", "router", "balanc", "kl", "reward", "__min", "__max", "mtp")


def loss_rank(name: str) -> int | None:
    """Lower is better; None when the metric is not a training LM loss."""
    n = name.strip().lower()
    if "loss" not in n or any(w in n for w in _EVAL_WORDS):
        return None
    if n in _EXACT_LOSS:
        return 0
    if any(w in n for w in _NOT_LM):
        return None
    return 1 if ("train" in n or "lm" in n) else 2


def eval_rank(name: str) -> int | None:
    """Rank of an evaluation-loss metric (None if not one)."""
    n = name.strip().lower()
    if "loss" not in n or not any(w in n for w in _EVAL_WORDS):
        return None
    if any(w in n for w in _NOT_LM):
        return None
    return 0 if n in {"eval_loss", "eval/loss", "val_loss", "val/loss", "validation loss"} else 1


def is_lr(name: str) -> bool:
    """Whether a metric is the learning rate."""
    n = name.strip().lower()
    return (
        any(w in n for w in ("learning_rate", "learning-rate", "learning rate"))
        or n in {"lr", "train/lr"}
        or n.endswith("/lr")
        or n.startswith("lr-")
    )


def is_tokens(name: str) -> bool:
    """Whether a metric counts tokens seen."""
    n = name.strip().lower()
    return (
        "token" in n
        and any(w in n for w in ("seen", "consumed", "num_input", "total", "processed"))
    ) or n in {"tokens", "train/tokens", "ntokens"}


def is_samples(name: str) -> bool:
    """Whether a metric counts samples seen."""
    n = name.strip().lower()
    return ("sample" in n and any(w in n for w in ("consumed", "seen", "total"))) or n in {
        "samples",
        "train/samples",
    }


def is_step(name: str) -> bool:
    """Whether a column is the step counter."""
    n = name.strip().lower()
    return n in {
        "step",
        "_step",
        "global_step",
        "train/global_step",
        "trainer/global_step",
        "iteration",
        "iter",
        "current_steps",
        "steps",
    }


def best_loss(names: Iterable[str]) -> str | None:
    """The best training-loss metric among names (stable: first of the best rank)."""
    ranked = [(r, i, n) for i, n in enumerate(names) if (r := loss_rank(n)) is not None]
    return min(ranked)[2] if ranked else None


def best_eval(names: Iterable[str]) -> str | None:
    """The best evaluation-loss metric among names."""
    ranked = [(r, i, n) for i, n in enumerate(names) if (r := eval_rank(n)) is not None]
    return min(ranked)[2] if ranked else None
