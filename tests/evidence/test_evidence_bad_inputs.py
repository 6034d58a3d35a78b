"""Bad input: every case gets a clear CompanionError or is parsed with its damage counted."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest
from helpers.evidence_binary import tensorboard_events, wandb_run_dir
from helpers.evidence_runs import scratch_run

from companion.errors import CompanionError, InputError
from companion.evidence import writers
from companion.evidence.detect import read_log
from companion.evidence.textlogs import parse_text
from companion.toolbox import run_tool
from companion.tools import ToolContext


def megatron_text(tmp_path: Path) -> str:
    """A clean Megatron log of the scratch run, as text."""
    p = tmp_path / "clean.log"
    writers.megatron(scratch_run(), p)
    return p.read_text()


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    p.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_log(p)


def test_binary_file(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    p.write_bytes(os.urandom(50_000))
    with pytest.raises(InputError, match="binary"):
        read_log(p)


def test_unknown_text_format(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("hello\nthis is not a training log\n" * 100)
    with pytest.raises(InputError, match="no training-loss records") as err:
        read_log(p)
    assert "Megatron" in err.value.text and "docs/formats.md" in err.value.text


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_log(tmp_path / "nope.log")
    with pytest.raises(InputError, match="no training log found"):
        read_log(tmp_path)


def test_truncated_text_line_is_counted(tmp_path: Path) -> None:
    text = megatron_text(tmp_path)
    cut = text[: text.rindex("lm loss:") + len("lm loss:")]
    p = tmp_path / "train.log"
    p.write_text(cut)
    log = read_log(p)
    assert len(log.series) == 59 and log.unparseable == 1
    assert log.unparseable_lines == [62]


def test_garbage_lines_are_counted_with_line_numbers(tmp_path: Path) -> None:
    lines = megatron_text(tmp_path).splitlines()
    lines.insert(10, "\x00\x01\x02 binary junk \xff\x00")
    lines.insert(20, " iteration 17/ 60 | lm loss: ### |")
    lines.insert(30, "WARNING: something harmless")
    lines.insert(40, "iteration 36/ 60 | consumed samples: 9216 | lm loss: 5.2E+00x9 |")
    p = tmp_path / "train.log"
    p.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    log = read_log(p)
    assert log.unparseable == 3
    assert log.unparseable_lines == [11, 21, 41]
    assert len(log.series) == 60
    out = run_tool("evidence.summarize", {"paths": [str(p)], "vocab_size": 256}, ToolContext())
    assert out.model_dump()["parse"]["unparseable"] == 3
    assert any(f.name == "unparseable" and "3 unparseable" in f.message for f in out.findings)


def test_nan_and_inf_losses(tmp_path: Path) -> None:
    text = megatron_text(tmp_path).splitlines()
    text[20] = text[20].split("lm loss:")[0] + "lm loss: nan | loss scale: 1.0 |"
    text[30] = text[30].split("lm loss:")[0] + "lm loss: inf | loss scale: 1.0 |"
    text.append(
        " iteration 61/ 60 | number of skipped iterations:   3 | number of nan iterations:   2 |"
    )
    p = tmp_path / "train.log"
    p.write_text("\n".join(text) + "\n")
    log = read_log(p)
    assert log.nonfinite_lines == [21, 31]
    assert log.skipped_iterations == 3 and log.nan_iterations == 2
    out = run_tool("evidence.summarize", {"paths": [str(p)], "vocab_size": 256}, ToolContext())
    assert out.parse.nonfinite == 2 and out.verdict == "from_scratch"
    nan = next(f for f in out.findings if f.name == "nonfinite")
    assert "2 NaN/inf" in nan.message and "3 skipped" in nan.message


def test_all_nan_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    p.write_text("".join(f"iter {i}: loss nan, time 1ms\n" for i in range(5)))
    with pytest.raises(InputError, match="NaN or inf"):
        run_tool("evidence.summarize", {"paths": [str(p)], "vocab_size": 256}, ToolContext())


def test_crlf_bom_and_latin1(tmp_path: Path) -> None:
    clean = tmp_path / "a.log"
    writers.megatron(scratch_run(), clean)
    expected = read_log(clean).series.loss
    crlf = tmp_path / "crlf.log"
    crlf.write_bytes(b"\xef\xbb\xbf" + clean.read_bytes().replace(b"\n", b"\r\n"))
    latin = tmp_path / "latin.log"
    latin.write_bytes("Température: 42°C\n".encode("latin-1") + clean.read_bytes())
    for p in (crlf, latin):
        log = read_log(p)
        assert list(log.series.loss) == list(expected) and log.unparseable == 0


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_logs(tmp_path: Path, codec: str) -> None:
    src = tmp_path / "src.log"
    writers.hf_console(scratch_run(), src)
    p = tmp_path / "ps-redirect.log"
    p.write_bytes(src.read_text().encode(codec))
    log = read_log(p)
    assert log.format == "hf-dict" and len(log.series) == 60


def test_csv_with_bom_and_without_loss(tmp_path: Path) -> None:
    p = tmp_path / "export.csv"
    p.write_bytes(b'\xef\xbb\xbf"Step","r - train/loss"\r\n1,5.5\r\n2,5.4\r\n')
    assert list(read_log(p).series.loss) == [5.5, 5.4]
    q = tmp_path / "other.csv"
    q.write_text('"Step","r - accuracy"\n1,0.5\n')
    with pytest.raises(InputError, match="no step and training-loss"):
        read_log(q)


def test_truncated_json_and_jsonl(tmp_path: Path) -> None:
    state = tmp_path / "trainer_state.json"
    writers.trainer_state(scratch_run(), state)
    state.write_text(state.read_text()[:500])
    with pytest.raises(InputError, match="not valid JSON"):
        read_log(state)
    jl = tmp_path / "trainer_log.jsonl"
    writers.llamafactory(scratch_run(), jl)
    jl.write_text(jl.read_text()[:-40] + "\nnot json at all\n")
    log = read_log(jl)
    assert log.unparseable == 2 and len(log.series) == 59


def test_truncated_tensorboard_file_is_reported(tmp_path: Path) -> None:
    run = scratch_run()
    events = tensorboard_events(tmp_path / "tb", run.steps, run.loss, run.lr)
    events.write_bytes(events.read_bytes()[:-10])
    log = read_log(events)
    assert len(log.series) == 59 and log.unparseable == 1
    assert any("truncated" in n for n in log.notes)


def test_truncated_and_corrupt_wandb_log(tmp_path: Path) -> None:
    run = scratch_run()
    folder = wandb_run_dir(tmp_path, run.steps, run.loss, run.lr)
    wb = next(folder.glob("*.wandb"))
    data = bytearray(wb.read_bytes())
    data[2000] ^= 0xFF  # one corrupt record
    wb.write_bytes(bytes(data[: len(data) - 50]))
    log = read_log(wb)
    assert 50 < len(log.series) < 60
    assert log.unparseable >= 2 and any("checksum" in n for n in log.notes)
    assert any("truncated" in n for n in log.notes)
    wb.write_bytes(b"not a wandb file at all")
    with pytest.raises(CompanionError):
        read_log(wb)


def test_one_huge_line_without_newlines(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    p.write_bytes(b"x" * (9 << 20))
    with pytest.raises(InputError, match="no training-loss records"):
        read_log(p)


def test_vocab_and_config_are_exclusive(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    writers.nanogpt(scratch_run(), p)
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 256}))
    args = {"paths": [str(p)], "vocab_size": 256, "config": str(tmp_path / "config.json")}
    with pytest.raises(InputError, match="either vocab_size or config"):
        run_tool("evidence.summarize", args, ToolContext())


def test_big_log_streams_with_flat_memory(tmp_path: Path) -> None:
    """A 48 MB log is parsed in 4 MB chunks: peak traced memory stays far below the file size."""
    p = tmp_path / "big.log"
    noise = "INFO: data loader worker heartbeat, nothing to see here, padding padding\n" * 99
    with p.open("w") as fh:
        for i in range(1, 6500):
            fh.write(noise)
            fh.write(f" iteration {i:8d}/ 6500 | lm loss: {10 - i / 1000:.6E} |\n")
    assert p.stat().st_size > 45 << 20
    tracemalloc.start()
    try:
        log = parse_text(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(log.series) == 6499
    assert peak < 20 << 20, peak
