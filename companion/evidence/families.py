"""Text-log families: one regex per training framework's console line (facts, not code).

Each family names its regex groups: step, loss and optionally lr, samples, tokens, skipped,
nan and kind (train vs eval). Formats are documented in docs/formats.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from companion.evidence.series import WindowKind

_NUM = rb"([^\s|,;)\]}\x1b]+)"
_ANSI = rb"(?:\x1b\[[0-9;]*m)*"


@dataclass(frozen=True)
class Family:
    """A console-log dialect: how to find its loss records and what they mean."""

    name: str
    label: str
    regex: re.Pattern[bytes]
    window_kind: WindowKind
    metric: str
    anchor: bytes | None = None  # a token every record line carries (to count broken lines)
    eval_kinds: tuple[bytes, ...] = ()  # `kind` group values that are evaluation losses
    # Line mode: `regex` finds the loss inside a line that holds `anchor`; each extra field
    # is searched for separately in that line (field order varies between versions).
    fields: tuple[tuple[str, re.Pattern[bytes]], ...] = ()
    split: tuple[tuple[str, re.Pattern[bytes]], ...] = ()  # per-field fast path (see MEGATRON)

    @property
    def line_mode(self) -> bool:
        """Whether records are parsed line by line (fields in any order)."""
        return bool(self.fields)


def _c(pattern: bytes) -> re.Pattern[bytes]:
    """Compile a bytes pattern."""
    return re.compile(pattern)


MEGATRON = Family(
    "megatron",
    "Megatron-LM console log",
    # Greedy `[^\n]*` then backtrack is ~3x faster in `re` than lazy scanning.
    _c(
        rb"iteration\s+(?P<step>\d+)/\s*\d+\s*\|"
        rb"(?:[^\n]*consumed samples:\s*(?P<samples>\d+))?"
        rb"(?:[^\n]*learning rate:\s*(?P<lr>[^\s|]+))?"
        rb"[^\n]*lm loss:\s*(?P<loss>[^\s|]+)"
    ),
    "mean",
    "lm loss",
    anchor=b"lm loss:",
    # One literal-prefixed pattern per field: several times faster than one pattern over the
    # whole line; used when every field is found once per record (checked per chunk).
    split=(
        ("step", _c(rb"iteration +(\d+)/")),
        ("lr", _c(rb"learning rate: *([^\s|]*)")),
        ("loss", _c(rb"lm loss: *([^\s|]*)")),
    ),
)
NEMO = Family(
    "nemo",
    "NeMo 2 training log",
    _c(rb"reduced_train_loss[:=]\s*(?P<loss>[^\s|,\]]+)"),
    "mean",
    "reduced_train_loss",
    anchor=b"reduced_train_loss",
    fields=(
        ("step", _c(rb"global_step[:=]\s*([\d.]+)")),
        ("iter", _c(rb"iteration\s+(\d+)/")),
        ("lr", _c(rb"\blr[:=]\s*([^\s|,\]]+)")),
        ("samples", _c(rb"consumed_samples[:=]\s*([\d.]+)")),
    ),
)
TORCHTITAN = Family(
    "torchtitan",
    "torchtitan log",
    _c(
        rb"step:\s*(?P<step>\d+)\s*" + _ANSI + rb"\s*loss:\s*" + _ANSI + rb"\s*(?P<loss>[^\s\x1b]+)"
    ),
    "point",
    "loss",
    anchor=b"loss:",
)
NANOGPT = Family(
    "nanogpt",
    "nanoGPT log",
    _c(rb"\biter (?P<step>\d+): loss (?P<loss>[^\s,]+)"),
    "point",
    "loss",
    anchor=b": loss ",
)
LLMC = Family(
    "llmc",
    "llm.c stdout",
    _c(
        rb"\bstep\s+(?P<step>\d+)/\d+\s*[|:]\s*(?:train )?loss\s+"
        + _NUM.replace(b"(", b"(?P<loss>", 1)
        + rb"(?:[^\n]*?\|\s*lr\s+(?P<lr>[^\s|]+))?"
    ),
    "point",
    "train loss",
)
LLMC_MAIN = Family(
    "llmc-main",
    "llm.c main.log",
    _c(rb"(?m)^s:(?P<step>\d+) (?P<kind>trl|tel):(?P<loss>\S+)"),
    "point",
    "trl",
    eval_kinds=(b"tel",),
)
MODDED = Family(
    "modded-nanogpt",
    "modded-nanogpt record",
    _c(rb"\bstep:(?P<step>\d+)/\d+ (?P<kind>train_loss|val_loss):(?P<loss>[^\s]+)"),
    "point",
    "train_loss",
    eval_kinds=(b"val_loss",),
)
DEEPSPEED = Family(
    "deepspeed-chat",
    "DeepSpeed-Chat log",
    _c(rb"\bEpoch (?P<step>\d+)/\d+ with loss (?P<loss>[^\s,]+)"),
    "epoch-mean",
    "loss",
    anchor=b" with loss ",
)
HF_DICT = Family(
    "hf-dict",
    "HF Trainer / axolotl / TRL console log",
    _c(rb"'loss': (?:[\w.]+\()?(?P<loss>[-+0-9.eE]+|nan|inf|-inf|NaN)"),
    "mean",
    "loss",
    anchor=b"'loss': ",
    fields=(
        ("lr", _c(rb"'learning_rate': (?:[\w.]+\()?([-+0-9.eE]+)")),
        ("tokens", _c(rb"'num_input_tokens_seen': (?:[\w.]+\()?([0-9.eE+]+)")),
    ),
)

FAMILIES: tuple[Family, ...] = (
    MEGATRON,
    NEMO,
    LLMC_MAIN,
    MODDED,
    TORCHTITAN,
    LLMC,
    NANOGPT,
    HF_DICT,
    DEEPSPEED,
)
BY_NAME = {f.name: f for f in FAMILIES}

# Header facts some frameworks print before training (vocabulary, sequence, batch tokens).
VOCAB_PATTERNS: tuple[tuple[re.Pattern[bytes], str], ...] = (
    (_c(rb"padded vocab \(size: \d+\) with \d+ dummy tokens \(new size: (\d{1,12})\)"), "Megatron"),
    (_c(rb"padded_vocab_size:\s*(\d{1,12})"), "llm.c"),
    (_c(rb"found vocab_size = (\d{1,12})"), "nanoGPT"),
    (_c(rb"defaulting to vocab_size of GPT-2 to (\d{1,12})"), "nanoGPT"),
    (_c(rb"\bvocab_size['\"]?\s*[:=]\s*(\d{1,12})\b"), "vocab_size"),
    (_c(rb"\b(?:padded_vocab_size|vocab_size)\s*\.{3,}\s*(\d{1,12})\b"), "arguments dump"),
    (_c(rb"--vocab[-_]size[= ]\s*(\d{1,12})\b"), "--vocab-size"),
    (_c(rb"(?i)\bvocab(?:ulary)? size\s*[:=]?\s*(\d{1,12})\b"), "vocab size"),
)
SEQ_PATTERN = _c(
    rb"\b(?:seq_length|seq_len|max_seq_len|max_seq_length|block_size|sequence_length)"
    rb"['\"]?\s*(?:[:=]|\.{3,})\s*(\d{1,12})\b"
)
TOKENS_PER_STEP = _c(
    rb"(?:tokens per iteration will be:|total desired batch size:)\s*([\d,]{1,20})"
)
SKIP_NAN = _c(rb"number of (skipped|nan) iterations:\s*([1-9]\d{0,11})")
TQDM_STEP = _c(rb"\|\s*(\d+)/(\d+) \[")
