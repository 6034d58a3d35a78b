"""Fingerprint throughput per core vs the full audit's streaming pass; fleet on 1 vs 2 workers.

In one run: (1) one fingerprint of a generated checkpoint on one BLAS thread, in GB/s of
tensor bytes; (2) `audit.compare` of that checkpoint against a fine-tune (the full audit's
streaming pass over both files), in GB/s over both; (3) `fleet.fingerprint` of N small
checkpoints on a local Ray with 1 and then 2 CPUs. Ends with the paper note for 10k
checkpoints on 20 nodes, from the measured per-core rate. Prints figures; asserts nothing.

    .venv/bin/python bench/fleet.py [--hidden 512] [--layers 8] [--fleet 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from threadpoolctl import threadpool_limits

from companion.audit import synth
from companion.fingerprint.engine import fingerprint_checkpoint
from companion.jobs import Job
from companion.settings import Settings
from companion.toolbox import context


def _rates(root: Path, spec: synth.Spec) -> tuple[float, float, int]:
    """(fingerprint GB/s on one core, audit GB/s, checkpoint bytes)."""
    w = synth.base(spec, seed=0)
    a = synth.save(root / "a", w, spec)
    b = synth.save(root / "b", synth.finetune(w, seed=1), spec)
    nbytes = sum(t.nbytes for t in w.values())
    fingerprint_checkpoint(a, Job())  # warm the page cache like the audit's second read
    with threadpool_limits(1):
        t = time.perf_counter()
        fingerprint_checkpoint(a, Job())
        fp_s = time.perf_counter() - t
    ctx = context(Settings(home=root / "home", store_enabled=False), [root])
    t = time.perf_counter()
    ctx.run("audit.compare", {"a": str(a), "b": str(b)})
    audit_s = time.perf_counter() - t
    return nbytes / fp_s / 1e9, 2 * nbytes / audit_s / 1e9, nbytes


def _fleet(root: Path, n: int, cpus: int) -> float:
    """Seconds for fleet.fingerprint of n small checkpoints on a local Ray with `cpus`."""
    import ray

    spec = synth.Spec(vocab=2048, hidden=256, layers=4, heads=4, intermediate=688)
    src = root / f"fleet{cpus}"
    for i in range(n):
        synth.save(src / f"m{i}", synth.base(spec, seed=i), spec)
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        ctx = context(Settings(home=root / f"home{cpus}"), [root])
        t = time.perf_counter()
        ctx.run("fleet.fingerprint", {"source": str(src), "resume": False})
        return time.perf_counter() - t
    finally:
        ray.shutdown()


def main() -> None:
    """Measure and print."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--fleet", type=int, default=8)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="companion-bench-fleet-"))
    h = args.hidden
    spec = synth.Spec(vocab=8192, hidden=h, layers=args.layers, heads=8, intermediate=h * 8 // 3)
    fp_rate, audit_rate, nbytes = _rates(root, spec)
    print(f"checkpoint: hidden {h}, {args.layers} layers, {nbytes / 1e6:.0f} MB f32")
    print(f"fingerprint: {fp_rate:.3f} GB/s per core (1 BLAS thread)")
    print(f"audit.compare streaming pass: {audit_rate:.3f} GB/s (default workers, both files)")
    print(f"fingerprint / audit rate: {fp_rate / audit_rate:.2f}x")
    one = _fleet(root, args.fleet, 1)
    two = _fleet(root, args.fleet, 2)
    print(f"fleet {args.fleet} checkpoints: 1 worker {one:.1f} s, 2 workers {two:.1f} s "
          f"(speed-up {one / two:.2f}x; Ray start-up included)")  # fmt: skip
    # Paper note: cost per checkpoint scales as params x hidden (operator products), so the
    # per-core rate at hidden H is about fp_rate x h / H; 10k checkpoints of 16 GB at H=4096.
    per_core = fp_rate * h / 4096
    cores = 20 * 32
    seconds = 10_000 * 16e9 / (per_core * 1e9 * cores)
    net = 10_000 * 16e9 / (20 * 1.25e9)  # 10 GbE per node
    print(f"paper: 10k x 16 GB (hidden 4096), 20 nodes x 32 cores: compute {seconds / 3600:.1f} h "
          f"at {per_core * 1e3:.1f} MB/s/core, network {net / 3600:.1f} h at 10 Gb/s/node; "
          f"the larger bounds the run.")  # fmt: skip


if __name__ == "__main__":
    main()
