"""Hypothesis fuzzing of every parser: mutated real layouts and raw bytes.

Nothing may escape but CompanionError. 12 parsers x 900 examples = 10,800 cases.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.evidence_binary import tensorboard_events, wandb_run_dir
from helpers.evidence_runs import scratch_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.errors import CompanionError
from companion.evidence import writers
from companion.evidence.detect import read_log
from companion.evidence.locate import scan_document
from companion.evidence.tabular import parse_csv, parse_jsonl, parse_trainer_state
from companion.evidence.textlogs import parse_text
from companion.evidence.tfevents import parse_events
from companion.evidence.wandb_run import parse_wandb_log

WORK = Path(tempfile.mkdtemp(prefix="evidence-fuzz-"))


def _sample(name: str, write: Callable[[Path], None]) -> bytes:
    """Bytes of a real file written by the given writer (small: the first records)."""
    p = WORK / f"seed-{name}"
    write(p)
    return p.read_bytes()


RUN = scratch_run()
SHORT = RUN  # 60 steps
SEEDS: dict[str, bytes] = {
    "megatron": _sample("m", lambda p: writers.megatron(SHORT, p, vocab=256)),
    "nemo": _sample("n", lambda p: writers.nemo(SHORT, p)),
    "torchtitan": _sample("t", lambda p: writers.torchtitan(SHORT, p)),
    "nanogpt": _sample("g", lambda p: writers.nanogpt(SHORT, p, vocab=256)),
    "llmc": _sample("l", lambda p: writers.llmc_stdout(SHORT, p, vocab=256)),
    "llmc-main": _sample("lm", lambda p: writers.llmc_main(SHORT, p)),
    "modded": _sample("md", lambda p: writers.modded_nanogpt(SHORT, p, "import torch")),
    "hf-console": _sample("h", lambda p: writers.hf_console(SHORT, p)),
    "deepspeed": _sample("d", lambda p: writers.deepspeed_chat(SHORT, p)),
    "csv": _sample("c", lambda p: writers.wandb_csv(SHORT, p, every=2)),
    "jsonl": _sample("j", lambda p: writers.llamafactory(SHORT, p)),
    "state": _sample("s", lambda p: writers.trainer_state(SHORT, p)),
}
SEEDS["tfevents"] = tensorboard_events(
    WORK / "tb", RUN.steps, RUN.loss, RUN.lr, tensor=True
).read_bytes()
SEEDS["wandb"] = next(
    wandb_run_dir(WORK, RUN.steps, RUN.loss, RUN.lr, vocab=256).glob("*.wandb")
).read_bytes()
TEXT_SEED = b"".join(v for k, v in SEEDS.items() if k not in ("tfevents", "wandb"))


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """A real file cut short, with bytes flipped, inserted or deleted, or plain random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    data = bytearray(seed[: draw(st.integers(0, len(seed)))])
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 3))
        if op == 0:
            data[at] = draw(st.integers(0, 255))
        elif op == 1:
            data[at:at] = draw(st.binary(min_size=1, max_size=24))
        elif op == 2:
            del data[at : at + draw(st.integers(1, 64))]
        else:
            data[at:at] = draw(
                st.sampled_from(
                    [
                        b"nan",
                        b"inf",
                        b"\r",
                        b"\x00",
                        b"\n",
                        b"|",
                        b"lm loss:",
                        b"'loss': ",
                        b"9" * 5000,
                        b"\xef\xbb\xbf",
                        b"{",
                        b",",
                    ]
                )
            )
    return bytes(data)


def _check(parse: Callable[[Path], object], data: bytes, name: str) -> None:
    """Parse the bytes from a file; only CompanionError may come out."""
    p = WORK / name
    p.write_bytes(data)
    with contextlib.suppress(CompanionError):
        parse(p)


PARSERS: dict[str, tuple[Callable[[Path], object], bytes]] = {
    "text-megatron": (parse_text, SEEDS["megatron"]),
    "text-nemo": (parse_text, SEEDS["nemo"] + SEEDS["torchtitan"]),
    "text-nanogpt-llmc": (parse_text, SEEDS["nanogpt"] + SEEDS["llmc"] + SEEDS["llmc-main"]),
    "text-modded-ds": (parse_text, SEEDS["modded"] + SEEDS["deepspeed"]),
    "text-hf": (parse_text, SEEDS["hf-console"]),
    "csv": (parse_csv, SEEDS["csv"]),
    "jsonl": (parse_jsonl, SEEDS["jsonl"]),
    "trainer-state": (parse_trainer_state, SEEDS["state"]),
    "tfevents": (lambda p: parse_events([p]), SEEDS["tfevents"][:3000]),
    "wandb": (parse_wandb_log, SEEDS["wandb"][:4000]),
    "auto-detect": (read_log, TEXT_SEED[:6000]),
    "editor-scan": (
        lambda p: scan_document(p.read_bytes().decode("utf-8", "replace"), p),
        TEXT_SEED[:6000],
    ),
}


@pytest.mark.parametrize("name", list(PARSERS))
def test_fuzz_parser(name: str) -> None:
    parse, seed = PARSERS[name]

    @settings(
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=mutated(seed))
    def run(data: bytes) -> None:
        _check(parse, data, f"case-{name}.log" if "csv" not in name else "case.csv")

    run()
