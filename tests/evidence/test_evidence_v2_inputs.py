"""Bad input through the generic grammar, real writers (wandb offline, TensorBoard) and the
TFRecord payload checksum."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from helpers.evidence_binary import tensorboard_events
from helpers.evidence_runs import VOCAB, scratch_run
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.evidence.detect import read_log
from companion.evidence.kvgrammar import parse_line
from companion.evidence.kvlog import parse_kv
from companion.evidence.textio import open_text_chunks
from companion.toolbox import run_tool
from companion.tools import ToolContext


def summarize(tmp: Path, *paths: Path, **extra: object) -> dict[str, object]:
    """Run the tool as the CLI/LSP would and return its JSON."""
    args = {"paths": [str(p) for p in paths], **extra}
    return run_tool("evidence.summarize", args, ToolContext(roots=[tmp])).model_dump(mode="json")


def test_large_log_streams_with_bounded_memory_and_progress(tmp_path: Path) -> None:
    p = tmp_path / "big.log"
    noise = "[rank0] 2024-05-01 12:00:00 INFO dataloader: shard {} prefetched 4096 samples\n"
    record = "step {} | loss {:.6f} | lr 3.0e-04\n"
    with p.open("w") as fh:
        for start in range(0, 100_000, 20_000):
            fh.write(
                "".join(
                    record.format(i, 2 + 9 * math.exp(-i / 3e4))
                    if i % 100 == 0
                    else noise.format(i)
                    for i in range(start, start + 20_000)
                )
            )
    size = p.stat().st_size
    calls: list[int] = []
    tracemalloc.start()
    log = parse_kv(p, open_text_chunks(p, chunk_size=1 << 18), lambda: calls.append(1))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(log.series) == 1000
    assert peak < 0.25 * size  # a few chunks and the series, never the whole file
    assert len(calls) >= size >> 18  # one progress/cancel check per chunk


def test_mixed_encodings_strings_nan_inf_negative_and_odd_exponents(tmp_path: Path) -> None:
    p = tmp_path / "mixed.log"
    p.write_bytes(
        b"\xef\xbb\xbfstep 1 | loss 1.0873E+001 | lr 3E-4\r\n"
        + "step 2 | loss 10.5 | note: étape\n".encode()
        + b"step 3 | loss 1.02e+1 | note: \xe9tape (latin-1)\n"
        b"step 4 | loss: abc\n"
        b"step 5 | loss nan\n"
        b"step 6 | loss inf\n"
        b"step 7 | loss -1.5\n"
        b"step 8 | loss .95e1\n"
    )
    log = read_log(p)
    assert list(log.series.step) == [1, 2, 3, 5, 6, 7, 8]
    assert log.series.loss[0] == pytest.approx(10.873) and log.series.lr[0] == 3e-4
    assert log.series.loss[2] == 10.2 and log.series.loss[-1] == 9.5
    assert log.unparseable_lines == [4] and log.nonfinite_lines == [5, 6]
    out = summarize(tmp_path, p, vocab_size=50257)
    # the negative value is set aside with the NaN/inf ones (and named in its own finding)
    assert out["parse"]["nonfinite"] == 3 and out["verdict"] == "from_scratch"
    assert any(f["name"] == "negative_loss" for f in out["findings"])


def test_one_point_log(tmp_path: Path) -> None:
    p = tmp_path / "one.txt"
    p.write_text("step 0, loss: 5.55\n")
    out = summarize(tmp_path, p, vocab_size=VOCAB)
    assert out["first_loss"] == 5.55 and out["verdict"] == "from_scratch"


def test_steps_going_backwards_keep_their_order(tmp_path: Path) -> None:
    p = tmp_path / "back.log"
    p.write_text("".join(f"iter {s} loss {9 - s / 100:.3f}\n" for s in (10, 20, 15, 30)))
    log = read_log(p)
    assert list(log.series.step) == [10, 20, 15, 30]


@settings(deadline=None, max_examples=150)
@given(st.binary(max_size=300))
def test_grammar_never_raises_on_bytes(raw: bytes) -> None:
    parse_line(raw)


SEPS = st.sampled_from([": ", "=", " ", ":"])
JOIN = st.sampled_from([" | ", ", ", "  ", " - ", "\t"])
STEP_KEYS = st.sampled_from(["step", "iter", "iteration", "global_step", "Step"])
LOSS_KEYS = st.sampled_from(["loss", "lm loss", "train_loss", "train/loss", "Loss"])


@settings(deadline=None, max_examples=200)
@given(
    STEP_KEYS,
    LOSS_KEYS,
    SEPS,
    JOIN,
    st.integers(0, 10**9),
    st.floats(1e-6, 1e6, allow_nan=False),
    st.booleans(),
    st.sampled_from(["{:.6f}", "{:.4e}", "{:.3E}", "{!r}", "{:g}"]),
)
def test_grammar_reads_any_order_and_separator(
    sk: str, lk: str, sep: str, join: str, step: int, loss: float, swap: bool, fmt: str
) -> None:
    text = fmt.format(loss)
    pairs = [f"{sk}{sep}{step}", f"{lk}{sep}{text}", f"lr{sep}3e-4"]
    if swap:
        pairs.reverse()
    rec = parse_line(join.join(pairs).encode())
    assert rec.fields["step"] == step and rec.fields["loss"] == float(text)
    assert rec.fields["lr"] == 3e-4


# ---- real writers ---------------------------------------------------------------------------

WANDB_SCRIPT = """
import math, sys, wandb
run = wandb.init(project="companion-test", dir=sys.argv[1], config={"vocab_size": %d})
for step, (loss, lr) in enumerate(zip(%r, %r), start=1):
    wandb.log({"train/loss": loss, "train/lr": lr}, step=step)
run.finish()
"""


def test_real_wandb_client_offline_run(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    run = scratch_run()
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env["WANDB_DISABLE_GIT"] = "true"
    script = WANDB_SCRIPT % (VOCAB, run.loss, run.lr)
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env=env,
        check=True,
        timeout=240,
        capture_output=True,
    )
    folder = next((tmp_path / "wandb").glob("offline-run-*"))
    log = read_log(folder)
    assert log.format == "wandb-run" and log.metric == "train/loss"
    assert len(log.series) == len(run.loss) and log.series.step[0] == 1
    assert log.series.loss[0] == pytest.approx(run.loss[0])
    assert log.vocab == VOCAB
    out = summarize(tmp_path, folder)
    assert out["verdict"] == "from_scratch" and out["vocab_size"] == VOCAB


def test_tfrecord_payload_crc_is_checked(tmp_path: Path) -> None:
    run = scratch_run()
    path = tensorboard_events(tmp_path / "tb", run.steps, run.loss, run.lr)
    data = bytearray(path.read_bytes())
    # walk to the 3rd record and flip a payload byte, leaving the length and its CRC intact
    pos = 0
    for _ in range(2):
        length = int.from_bytes(data[pos : pos + 8], "little")
        pos += 12 + length + 4
    data[pos + 12 + 4] ^= 0xFF
    path.write_bytes(bytes(data))
    log = read_log(path)
    assert log.unparseable == 1 and any("payload checksum" in n for n in log.notes)
    assert len(log.series) == len(run.loss) - 1
