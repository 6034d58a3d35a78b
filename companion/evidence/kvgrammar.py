"""The generic record grammar: a log line as `key value` pairs, in any order and separator.

`step 0, loss: 9.87`, `iter 10 | lm loss 9.1 | lr 3e-4`, `{'loss': 2.3, 'grad_norm': 1.2}`,
karpathy's `0 train 9.91` (a leading integer is the step) and DeepSpeed-Chat's `ppl: 1234.5`
all read as records. Keys are canonicalised by alias (facts about what frameworks print);
unknown keys are ignored, so the grammar never needs one regex per framework.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

NUM = rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)"
# A key is one or two words ("lm loss", "learning rate"), optionally quoted; the value may be
# wrapped in a call (`tensor(9.8)`, `np.float64(2.3)`).
PAIR = re.compile(
    rb"(?i)(?<![\w./-])['\"]?(?P<key>[a-z_][\w./-]*(?: [a-z_][\w./-]*)?)['\"]?"
    rb"(?:\s*[:=]\s*|\s+)(?:[a-z_][\w.]*\()?(?P<val>" + NUM + rb")(?!\w|\.\w)"
)
LEADING_STEP = re.compile(rb"^\s*(\d{1,12})\s+[A-Za-z]")
LOSS_WORD = re.compile(rb"(?i)(?:\bloss|\bppl|perplexity)['\"]?\s*[:=]")
# fairseq's validation summary: `| valid on 'valid' subset | loss 9.9 | ... | num_updates 100`
VALID_LINE = re.compile(rb"\bvalid on '|\|\s*valid\s*\|")
EPOCH_CONTEXT = re.compile(rb"(?i)\bepoch\s*[:=]?\s*(\d{1,9})\s*/\s*\d+")

ALIASES: dict[str, str] = {
    **dict.fromkeys(("step", "steps", "global_step", "iter", "iteration", "it", "_step"), "step"),
    "num_updates": "step",  # fairseq
    "nll_loss": "nll",  # fairseq: the loss without label smoothing, in bits like `loss`
    **dict.fromkeys(("train/global_step", "trainer/global_step"), "step"),
    **dict.fromkeys(
        (
            "loss",
            "lm_loss",
            "train_loss",
            "train",
            "training_loss",
            "loss_train",
            "reduced_train_loss",
            "trl",
            "train_lm_loss",
            "avg_loss",
            "xent",
        ),
        "loss",
    ),
    **dict.fromkeys(
        ("val", "val_loss", "eval_loss", "valid_loss", "validation_loss", "test_loss", "tel"),
        "eval",
    ),
    **dict.fromkeys(("ppl", "perplexity", "eval_ppl", "val_ppl", "eval_perplexity"), "ppl"),
    **dict.fromkeys(("lr", "learning_rate", "lr_0"), "lr"),
    **dict.fromkeys(("grad_norm", "gnorm", "grad_norm_total", "norm"), "grad_norm"),
    **dict.fromkeys(
        ("tokens", "num_input_tokens_seen", "tokens_seen", "consumed_tokens"), "tokens"
    ),
    **dict.fromkeys(("samples", "consumed_samples"), "samples"),
    "epoch": "epoch",
}
EVAL_WORDS = {"val", "valid", "validation", "eval", "test", "dev"}
# "with loss", "avg loss", "train loss": only these first words defer to the last word, so
# "aux loss" or "z loss" (auxiliary terms) never pass for the training loss.
FILLERS = {"with", "avg", "average", "mean", "train", "training", "batch", "total", "lm"}
FILLERS |= {"current", "running", "smoothed", "global", "step", "learning", "grad"}
MEAN_KEYS = {"lm loss", "lm_loss", "reduced_train_loss"}


@lru_cache(maxsize=4096)  # logs repeat a handful of keys on every line
def canon(key: str) -> str | None:
    """The canonical field a printed key names (step, loss, eval, ppl, lr, ...), or None."""
    k = re.sub(r"[\s-]+", "_", key.strip("'\"").lower())
    if k in ALIASES:
        return ALIASES[k]
    prefix, _, base = k.rpartition("/")
    if prefix:
        if prefix.split("/")[-1] in EVAL_WORDS and ALIASES.get(base) == "loss":
            return "eval"
        return ALIASES.get(base) if prefix.split("/")[-1] in {"train", "training"} else None
    words = k.split("_")
    if len(words) > 1 and words[0] in EVAL_WORDS and ALIASES.get(words[-1]) == "loss":
        return "eval"
    if len(words) > 1 and words[0] in FILLERS:
        return ALIASES.get("_".join(words[1:]), ALIASES.get(words[-1]))
    return None


def number(raw: bytes) -> float:
    """A printed number (odd exponents, nan/inf spellings included); NaN when not one."""
    try:
        return float(raw)
    except ValueError:
        return math.nan


@dataclass
class Record:
    """The canonical fields found on one line, and the raw key that gave the loss."""

    fields: dict[str, float] = field(default_factory=dict)
    loss_key: str = ""
    leading_step: float | None = None
    pairs: int = 0  # `key value` pairs seen, known or not


def parse_line(line: bytes) -> Record:
    """Every recognised `key value` pair of one line (the first of each field wins)."""
    rec = Record()
    for m in PAIR.finditer(line):
        rec.pairs += 1
        raw_key = m.group("key").decode("ascii", "replace")
        name = canon(raw_key)
        if name is None or name in rec.fields:
            continue
        rec.fields[name] = number(m.group("val"))
        if name == "loss":
            rec.loss_key = raw_key.strip("'\"")
    if (m2 := LEADING_STEP.match(line)) is not None:
        rec.leading_step = float(m2.group(1))
    return rec


# ---- tables: markdown `| Step | Training Loss |` and whitespace `step loss lr` headers ----


def _cells(line: bytes) -> list[bytes]:
    """A line's cells: pipe-separated when it has pipes, else whitespace-separated."""
    text = line.strip()
    if text.startswith(b"|"):
        return [c.strip() for c in text.strip(b"|").split(b"|")]
    return text.split()


def table_header(line: bytes) -> list[str | None] | None:
    """Column fields of a table header line (None when it is not one)."""
    cells = _cells(line)
    if len(cells) < 2 or len(cells) > 40 or any(not c or c[:1].isdigit() for c in cells):
        return None
    names = [canon(c.decode("ascii", "replace")) for c in cells]
    if not any(n in ("loss", "eval", "ppl") for n in names):
        return None
    return names


_SEPARATOR_ROW = re.compile(rb"^\s*\|?[\s:|-]+\|?\s*$")
_NO_VALUE = {b"no log", b"-", b"", b"n/a", b"none"}


def table_row(line: bytes, names: list[str | None]) -> dict[str, float] | None:
    """The fields of one table row under a header (None when the row does not fit)."""
    if _SEPARATOR_ROW.match(line):
        return {}
    cells = _cells(line)
    if len(cells) != len(names):
        return None
    out: dict[str, float] = {}
    for name, cell in zip(names, cells, strict=True):
        value = math.nan if cell.lower() in _NO_VALUE else number(cell)
        if math.isnan(value) and cell.lower() not in _NO_VALUE and cell.lower() != b"nan":
            return None
        if name is not None and name not in out:
            out[name] = value
    return out
