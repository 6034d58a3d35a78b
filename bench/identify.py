"""Identify latency over 1k / 10k / 100k synthetic fingerprints, against a one-by-one scan.

Synthetic sketches (unit vectors of the real width) are indexed as `fingerprint.identify`
does (`SketchIndex`: one matrix, one BLAS product, argpartition). The baseline, measured in
the same run, scores every stored fingerprint one by one (as a catalogue scan would). Also
timed: building the index from base64 rows (a cold CLI call) and the null (once per store
state). Prints figures; asserts nothing.

    .venv/bin/python bench/identify.py [--queries 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from companion.fingerprint.features import SKETCH_DIM, encode
from companion.fingerprint.index import SketchIndex


def _pct(xs: list[float], q: float) -> float:
    """A percentile in ms."""
    return float(np.percentile(xs, q)) * 1e3


def main() -> None:
    """Run the sizes and print p50/p95 for the index and the scan."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'stored':>8} {'index p50':>10} {'p95':>8} {'scan p50':>10} {'p95':>8} "
          f"{'speed-up':>9} {'build':>8} {'null':>8}")  # fmt: skip
    for n in (1_000, 10_000, 100_000):
        vecs = rng.standard_normal((n, SKETCH_DIM)).astype(np.float32)
        unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        rows = [(i, i, f"m{i}", f"d{i}", encode(v)) for i, v in enumerate(unit)]
        t = time.perf_counter()
        index = SketchIndex.build(rows)
        build = time.perf_counter() - t
        t = time.perf_counter()
        index.null()
        null = time.perf_counter() - t
        queries = rng.standard_normal((args.queries, SKETCH_DIM)).astype(np.float32)
        fast, slow = [], []
        for q in queries:
            t = time.perf_counter()
            index.search(q, 10)
            fast.append(time.perf_counter() - t)
        for q in queries[: max(5, args.queries // 20)]:
            t = time.perf_counter()
            qn = q / np.linalg.norm(q)
            scores = [float(row @ qn) for row in index.matrix]
            sorted(range(n), key=scores.__getitem__, reverse=True)[:10]
            slow.append(time.perf_counter() - t)
        ratio = statistics.median(slow) / statistics.median(fast)
        cells = [f"{n:>8}", f"{_pct(fast, 50):>8.2f}ms", f"{_pct(fast, 95):>6.2f}ms"]
        cells += [f"{_pct(slow, 50):>8.1f}ms", f"{_pct(slow, 95):>6.1f}ms", f"{ratio:>8.1f}x"]
        cells += [f"{build * 1e3:>6.0f}ms", f"{null * 1e3:>6.0f}ms"]
        print(" ".join(cells))


if __name__ == "__main__":
    main()
