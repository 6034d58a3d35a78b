"""`python -m fuzz --budget SECONDS [--only NAME]`: run the campaign and print its table."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from fuzz.engine import Report, campaign
from fuzz.targets import WORK, targets


def table(reports: list[Report]) -> str:
    """The campaign's results as a markdown table."""
    rows = [
        "| target | cases | cases/s | crashes | slowest (ms) | slowest input (first bytes) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in reports:
        head = r.slowest_input[:40].decode("utf-8", "backslashreplace").replace("|", "\\|")
        head = head.replace("\n", "\\n").replace("\r", "\\r")
        rows.append(
            f"| {r.name} | {r.cases:,} | {r.rate:,.0f} | {len(r.crashes)} | "
            f"{r.slowest * 1000:.1f} | `{head}` ({len(r.slowest_input):,} B) |"
        )
    total = sum(r.cases for r in reports)
    crashes = sum(len(r.crashes) for r in reports)
    rows.append(f"| **total** | **{total:,}** | | **{crashes}** | | |")
    return "\n".join(rows)


def main() -> int:
    """Run every target (or the ones named) and print the table; exit 1 on any crash."""
    ap = argparse.ArgumentParser(prog="python -m fuzz")
    ap.add_argument("--budget", type=float, default=45.0, help="seconds per target")
    ap.add_argument("--only", nargs="*", help="target names")
    ap.add_argument("--out", type=Path, default=Path("test-artifacts/fuzz"))
    ns = ap.parse_args()
    logging.disable(logging.CRITICAL)  # parsers log warnings about every damaged line
    ns.out.mkdir(parents=True, exist_ok=True)
    reports = []
    started = time.monotonic()
    for name, (target, seeds) in targets().items():
        if ns.only and name not in ns.only:
            continue
        r = campaign(name, target, seeds, ns.budget, ns.out)
        print(f"{name}: {r.cases:,} cases, {r.rate:,.0f}/s, {len(r.crashes)} crashes", flush=True)
        for c in r.crashes[:5]:
            print(f"  crash: {c}", flush=True)
        (ns.out / f"slowest-{name}.bin").write_bytes(r.slowest_input)
        reports.append(r)
    print(f"\n{table(reports)}\n\ntotal {time.monotonic() - started:.0f} s; work dir {WORK}")
    summary = [{"target": r.name, "cases": r.cases, "crashes": r.crashes} for r in reports]
    (ns.out / "report.json").write_text(json.dumps(summary, indent=2))
    return 1 if any(r.crashes for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
