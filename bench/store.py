"""Audit store benchmark: 10k audits with 1M per-tensor rows, then indexed queries.

Writes the rows through the store's own recording code (`write_record`, one transaction per
audit, as the CLI and server do), then times `audit.query`'s own query code for: by model,
by verdict, by role + metric threshold, and all three combined. Target: each ≤ 100 ms.
Baseline measured in the same run: the same filter answered by a full table scan
(`NOT INDEXED`). Prints figures; asserts nothing.

    .venv/bin/python bench/store.py [--audits 10000] [--rows 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import BaseModel

from companion.manifest import Manifest
from companion.store.db import connect
from companion.store.query import run_query
from companion.store.record import write_record
from companion.store.schemas import QueryInput

ROLES = ("embed", "attn_norm", "attn_q", "attn_k", "attn_v", "attn_o", "mlp_norm", "mlp")
VERDICTS = ("derived", "independent", "inconclusive")
TARGET_MS = 100.0


class BenchAudit(BaseModel):
    """The fields of an audit result the store reads (per-tensor rows are passed separately)."""

    verdict: str
    reasons: list[str]
    manifest: Manifest


def _sha(text: str) -> str:
    """A stable fake content hash."""
    return hashlib.sha256(text.encode()).hexdigest()


def populate(conn: Any, audits: int, rows: int, models: int, seed: int = 0) -> float:
    """Record `audits` audits of `rows` tensors each; return seconds taken."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    for i in range(audits):
        a, b = rng.sample(range(models), 2)
        verdict = VERDICTS[i % 3]
        inputs = [
            {"path": f"/models/m{m}/model.safetensors", "size": 1000 + m, "sha256": _sha(f"m{m}")}
            for m in (a, b)
        ]
        params = {"a": f"/models/m{a}", "b": f"/models/m{b}"}
        manifest = Manifest(tool="audit.compare", parameters=params, inputs=inputs)  # type: ignore[arg-type]
        result = BenchAudit(verdict=verdict, reasons=[f"bench {i}"], manifest=manifest)
        related = verdict == "derived"
        per_tensor = [
            {
                "name_a": f"model.layers.{k // len(ROLES)}.{ROLES[k % len(ROLES)]}.weight",
                "role": ROLES[k % len(ROLES)],
                "layer": k // len(ROLES),
                "metrics": {
                    "cosine": rng.uniform(0.9, 1.0),
                    "pearson": rng.uniform(0.9, 1.0) if related else rng.uniform(-0.05, 0.6),
                    "spearman": rng.uniform(-0.1, 1.0),
                    "rel_l2": rng.uniform(0, 2),
                },
                "baselines": {"shuffle_pearson_mean": rng.gauss(0, 0.01)},
                "z": rng.gauss(5 if related else 0, 1),
                "p": rng.random(),
            }
            for k in range(rows)
        ]
        write_record(conn, "audit.compare", params, result, per_tensor=per_tensor)
        if (i + 1) % 1000 == 0:
            done = time.perf_counter() - t0
            print(f"  recorded {i + 1} audits ({(i + 1) * rows} rows) in {done:.1f} s", flush=True)
    return time.perf_counter() - t0


def timed(func: Callable[[], Any], repeat: int = 7) -> tuple[float, Any]:
    """Median milliseconds of `repeat` runs (after one warm-up), and the last result."""
    out = func()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = func()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), out


def main() -> int:
    """Build the store, run the queries, print figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--audits", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="build the store in this folder and keep it")
    ns = parser.parse_args()
    folder = ns.keep or Path(tempfile.mkdtemp(prefix="companion-bench-store-"))
    path = folder / "store.sqlite3"
    conn = connect(path)
    have = conn.execute("SELECT count(*) FROM audits").fetchone()[0]
    if have < ns.audits:
        print(f"populating {path}: {ns.audits} audits x {ns.rows} per-tensor rows")
        secs = populate(conn, ns.audits - have, ns.rows, ns.models, seed=have)
        rows = (ns.audits - have) * ns.rows
        print(
            f"recorded in {secs:.1f} s: {rows / secs:,.0f} rows/s, "
            f"{secs / ns.audits * 1e3:.2f} ms/audit"
        )
    conn.execute("ANALYZE")
    n_rec = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    n_rows = conn.execute("SELECT count(*) FROM per_tensor").fetchone()[0]
    print(
        f"store: {n_rec:,} records, {n_rows:,} per-tensor rows, {path.stat().st_size / 1e6:.0f} MB"
    )

    def query(**args: Any) -> Callable[[], Any]:
        q = QueryInput(**args)
        return lambda: run_query(conn, q, [], str(path))

    def scan(sql: str, *params: Any) -> Callable[[], Any]:
        return lambda: conn.execute(sql, params).fetchall()

    model = "m7"
    cases = [
        (
            "by model (name, newest 50)",
            query(model=[model]),
            scan(
                "SELECT r.id FROM records r NOT INDEXED WHERE r.args LIKE ? "
                "ORDER BY r.created DESC LIMIT 50",
                f'%"/models/{model}"%',
            ),
        ),
        (
            "by verdict (derived, newest 50)",
            query(verdict=["derived"]),
            scan(
                "SELECT r.id FROM records r NOT INDEXED WHERE r.verdict = ? "
                "ORDER BY r.created DESC LIMIT 50",
                "derived",
            ),
        ),
        (
            "by role + threshold (attn_norm, pearson>0.995)",
            query(role=["attn_norm"], where=["pearson>0.995"], tensor_limit=5),
            scan(
                "SELECT DISTINCT t.record_id FROM per_tensor t NOT INDEXED "
                "WHERE t.role = ? AND t.pearson > ? ORDER BY t.record_id DESC LIMIT 50",
                "attn_norm",
                0.995,
            ),
        ),
        (
            "model + verdict + role + threshold",
            query(model=[model], verdict=["derived"], role=["attn_norm"], where=["pearson>0.99"]),
            scan(
                "SELECT DISTINCT t.record_id FROM per_tensor t NOT INDEXED "
                "WHERE t.role = ? AND t.pearson > ? ORDER BY t.record_id DESC LIMIT 50",
                "attn_norm",
                0.99,
            ),
        ),
    ]
    print(
        f"\n{'query':48} {'indexed ms':>10} {'scan ms':>9} {'speed-up':>9}  "
        f"target ≤ {TARGET_MS:.0f} ms"
    )
    worst = 0.0
    for title, indexed, baseline in cases:
        ms, result = timed(indexed)
        base_ms, _ = timed(baseline, repeat=3)
        worst = max(worst, ms)
        verdict = "ok" if ms <= TARGET_MS else "SLOW"
        print(
            f"{title:48} {ms:10.2f} {base_ms:9.1f} {base_ms / ms:8.0f}x  {verdict} "
            f"({len(result.records)} records, total {result.total}"
            f"{'+' if result.total_capped else ''})"
        )
    print(f"\nworst indexed query: {worst:.2f} ms (target ≤ {TARGET_MS:.0f} ms)")
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
