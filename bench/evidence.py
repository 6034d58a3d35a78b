"""Benchmark: summarize a 1M-row W&B CSV export and a 1M-line Megatron log (target ≤ 2 s each).

Baseline measured in the same run: pandas.read_csv on the same CSV (it only parses; we also
analyse and hash). Run: .venv/bin/python bench/evidence.py [--rows N]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# bench/log_shapes.py is imported as bench.log_shapes (the tests do the same)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_csv(path: Path, rows: int) -> None:
    """A W&B panel export: Step, '<run> - train/loss', __MIN, __MAX (every 7th cell empty)."""
    steps = np.arange(1, rows + 1)
    loss = 2.0 + 10.0 * np.exp(-steps / 3000.0) + 0.02 * np.sin(steps)
    with path.open("w") as fh:
        col = "solar-pretrain - train/loss"
        fh.write(f'"Step","{col}","{col}__MIN","{col}__MAX"\n')
        for start in range(0, rows, 100_000):
            block = []
            for s, v in zip(
                steps[start : start + 100_000].tolist(),
                loss[start : start + 100_000].tolist(),
                strict=True,
            ):
                block.append(f"{s},,,\n" if s % 7 == 0 else f"{s},{v:.6f},{v:.6f},{v:.6f}\n")
            fh.write("".join(block))


def write_megatron(path: Path, rows: int) -> None:
    """Megatron-LM console lines with timestamps, as printed every iteration."""
    with path.open("w") as fh:
        fh.write(" > padded vocab (size: 50257) with 175 dummy tokens (new size: 50432)\n")
        for start in range(1, rows + 1, 100_000):
            block = []
            for i in range(start, min(rows, start + 99_999) + 1):
                loss = 2.0 + 9.0 * math.exp(-i / 3000.0)
                lr = 3e-4 * min(1.0, i / 2000)
                block.append(
                    f" [2024-05-01 12:00:00] iteration {i:8d}/ {rows:8d} | consumed samples: "
                    f"{i * 512:12d} | elapsed time per iteration (ms): 1234.5 | learning rate: "
                    f"{lr:.6E} | global batch size:   512 | lm loss: {loss:.6E} | "
                    "loss scale: 1.0 | grad norm: 1.234 | number of skipped iterations:   0 | "
                    "number of nan iterations:   0 |\n"
                )
            fh.write("".join(block))


def timed(fn: object, repeat: int = 3) -> float:
    """Best wall time of a few runs (the machine is shared)."""
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return best


def coverage(tmp: Path) -> list[tuple[str, str, str]]:
    """(shape, format read, status) for every published shape in bench/log_shapes.py."""
    from bench.log_shapes import SHAPES
    from companion.errors import InputError
    from companion.evidence.detect import read_log

    rows = []
    for i, (name, filename, text, expected) in enumerate(SHAPES):
        folder = tmp / f"shape{i}"
        folder.mkdir()
        path = folder / filename
        path.write_text(text, encoding="utf-8")
        try:
            log = read_log(path)
        except InputError:
            rows.append((name, "-", "not read"))
            continue
        first = next((float(v) for v in log.series.loss if not math.isnan(v)), math.nan)
        ok = abs(first - expected) < 1e-3
        rows.append((name, log.format, "read" if ok else f"WRONG first value {first:.4g}"))
    return rows


def family_rates(tmp: Path, lines: int) -> list[tuple[str, float, float, float]]:
    """(shape, lines/s of read_log, of it line by line, of a plain re.finditer) per shape."""
    import re

    from bench.log_shapes import SHAPES
    from companion.evidence.detect import read_log

    number = re.compile(rb"[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?")
    out = []
    for i, (name, filename, text, _) in enumerate(SHAPES):
        if filename.endswith((".json", ".jsonl", ".csv")) or "Composer" in name:
            continue
        body = [ln for ln in text.splitlines(keepends=True) if ln.strip()]
        path = tmp / f"rate{i}_{filename}"
        reps = max(1, lines // len(body))
        path.write_text("".join(body) * reps, encoding="utf-8")
        n = reps * len(body)
        t_read = timed(lambda p=path: read_log(p))
        t_slow = timed(lambda p=path: _line_by_line(p))
        data = path.read_bytes()
        t_re = timed(lambda d=data: sum(1 for _ in number.finditer(d)))
        out.append((name, n / t_read, n / t_slow, n / t_re))
    return out


def _line_by_line(path: Path) -> None:
    """read_log with the generic grammar's template fast path turned off."""
    from companion.evidence import kvlog
    from companion.evidence.detect import read_log

    saved, kvlog.MAX_TEMPLATES = kvlog.MAX_TEMPLATES, 0
    try:
        read_log(path)
    finally:
        kvlog.MAX_TEMPLATES = saved


def report_v2(lines: int) -> None:
    """Coverage table and lines/s per format family against re.finditer."""
    with tempfile.TemporaryDirectory() as tmp:
        rows = coverage(Path(tmp))
        read = sum(1 for _, _, st in rows if st == "read")
        print(
            f"\nparse coverage: {read}/{len(rows)} published shapes read ({read / len(rows):.0%})"
        )
        print("| shape | format | status |\n|---|---|---|")
        for name, fmt, status in rows:
            print(f"| {name} | {fmt} | {status} |")
        print(f"\nlines/s per family ({lines:,} lines each), baseline re.finditer over numbers:")
        print(
            "| shape | read_log lines/s | line by line (no template) | re.finditer lines/s "
            "| ratio |\n|---|---|---|---|---|"
        )
        for name, ours, slow, base in family_rates(Path(tmp), lines):
            print(f"| {name} | {ours:,.0f} | {slow:,.0f} | {base:,.0f} | {ours / base:.2f}x |")


def main() -> None:
    """Generate, time, print ratios."""
    import pandas as pd

    from companion.toolbox import run_tool
    from companion.tools import ToolContext

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--family-lines", type=int, default=200_000)
    parser.add_argument("--only-families", action="store_true", help="skip the 1M-row part")
    args = parser.parse_args()
    rows = args.rows
    if args.only_families:
        report_v2(args.family_lines)
        return
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, meg_path = Path(tmp) / "wandb_export.csv", Path(tmp) / "megatron.log"
        write_csv(csv_path, rows)
        write_megatron(meg_path, rows)
        ctx = ToolContext()

        def summarize(p: Path) -> None:
            out = run_tool("evidence.summarize", {"paths": [str(p)], "vocab_size": 50432}, ctx)
            assert out.model_dump()["parse"]["values"] > 0.8 * rows

        t_pandas = timed(lambda: pd.read_csv(csv_path))
        t_csv = timed(lambda: summarize(csv_path))
        t_meg = timed(lambda: summarize(meg_path))
        mb = {p: p.stat().st_size / 1e6 for p in (csv_path, meg_path)}
        print(f"rows: {rows:,}")
        print(f"pandas.read_csv (baseline) : {t_pandas:6.3f} s  ({mb[csv_path]:.0f} MB)")
        print(
            f"summarize W&B CSV           : {t_csv:6.3f} s  ratio {t_csv / t_pandas:5.2f}x pandas"
            f"  target <= 2 s: {'ok' if t_csv <= 2 else 'MISSED'}"
        )
        print(
            f"summarize Megatron log      : {t_meg:6.3f} s  ratio {t_meg / t_pandas:5.2f}x pandas"
            f"  ({mb[meg_path]:.0f} MB)  target <= 2 s: {'ok' if t_meg <= 2 else 'MISSED'}"
        )

        report_v2(args.family_lines)


if __name__ == "__main__":
    main()
