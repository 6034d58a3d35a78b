"""Benchmark: weight-audit throughput against the common peer script, in the same run.

Generates a bf16 pair (A, and B = A + noise; default ~2 x 1 GB, `--size-mb` to change,
`--size-mb 10240` for 10 GB+) and measures, each in a fresh subprocess (for its peak RSS):
  0. the DEFAULT `companion audit A B` path, first: baselines, permutation test and the
     symmetry alignment (sampled units and dims, nulls stopped once settled: see
     companion/audit/matching.py; skipped when every matrix already matches element-wise,
     see row 5), sha256 digests from the digest cache (the user's settings);
  1. baseline: safetensors safe_open(framework="pt") + torch cosine per tensor (torch
     installed for the bench only; without torch, a numpy per-tensor cosine is used and
     the output says so);
  2. companion's full audit without baselines, reading and hashing every input file for
     the manifest ("audit"), and again with the sha256 digests reused from the digest cache
     because the files are unchanged since an earlier run ("audit, cached sha");
  3. the full audit with baselines (shuffle null, cross-layer, random-init reference);
  4. the same plus the permutation-robust matching test;
  5. "default, tests forced": the default path with symmetry_tests=always: on this pair (B is
     A plus noise, so every matrix matches element-wise) the default skips the unit, head and
     hidden-alignment tests (companion/audit/plain.py); this row shows what they cost;
  6. "default, first sight": the default path on files it has never seen (an empty digest
     cache, so every byte is read and hashed, as in (2) "audit");
on cached data (`--repeats` interleaved runs each, medians), each run after an eviction and
one sequential read of the pair, so the page cache holds it as a sequential reader leaves it
(in large folios on kernels that make them, such as ext4 on Linux 6.16+; the line "page cache
after warming" says how much); then, labelled,
  7. the peer and (2) "audit" from a page cache that holds the pair in small pages (64 KB
     reads with readahead off, as on kernels without large folios): the peer's mmap reads
     slow down far more from small pages than our preads do;
then (2) both ways on cold data
(pages evicted with posix_fadvise) against the O_DIRECT disk bandwidth measured with
`dd iflag=direct` on both files just before each run (medians of interleaved runs, and of the
per-run ratios: shared virtual disks vary a lot). After those rows (`--no-formats` skips
them), labelled:
  8. "GGUF F16, cached sha": (2) on a GGUF copy of the pair (F16, llama.cpp names, so Q/K
     go through the rotary re-ordering; written by bench/audit_formats.py);
  9. "remote (loopback)": (2) on the pair served by Range from a loopback HTTP server on
     127.0.0.1, with an empty range cache (every tensor byte fetched), and "remote, range
     cache" repeating it with that cache (nothing fetched): the ceiling is the server's rate,
     measured in the same run as "loopback GET (ceiling)" (both files by plain GETs).
`--rss-sweep 1024,4096` then runs (2) at each size to show that peak RSS stays flat.
Prints ratios; asserts nothing. Wall times include interpreter start-up work inside the timed
call (imports of torch or of companion); "engine s" is the audit's own reported time.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import audit_formats as formats  # noqa: E402 - needs the repo on the path


def shapes(size_mb: int) -> list[tuple[str, tuple[int, ...]]]:
    """A Llama-like layout (hidden 2048) with as many layers as fit `size_mb` of bf16."""
    from companion.audit import synth

    h, inter, vocab = 2048, 5632, 32000
    per_layer = (4 * h * h + 3 * h * inter + 2 * h) * 2
    layers = max(1, (size_mb * 2**20 - 2 * vocab * h * 2) // per_layer)
    spec = synth.Spec(vocab=vocab, hidden=h, layers=int(layers), heads=16, intermediate=inter)
    return synth.tensor_shapes(spec)


def generate(folder: Path, size_mb: int, noise: float, seed: int = 0) -> Path:
    """Write one bf16 checkpoint of `size_mb` (reused when already there, from --keep)."""
    folder.mkdir(parents=True, exist_ok=True)
    layout = shapes(size_mb)
    path = folder / "model.safetensors"
    expected = sum(int(np.prod(shape)) * 2 for _, shape in layout)
    if path.exists() and path.stat().st_size > expected:  # reuse a pair from --keep
        return path
    return formats.write_bf16(path, layout, noise, seed)


def run_torch(a: Path, b: Path) -> float:
    """The peer-script shape: safe_open(framework='pt') and a torch cosine per tensor.

    Returns its loop time (after the imports)."""
    import torch
    from safetensors import safe_open

    torch.set_num_threads(2)
    t = time.perf_counter()
    with safe_open(str(a), framework="pt") as fa, safe_open(str(b), framework="pt") as fb:
        for name in fa.keys():  # noqa: SIM118 - safe_open has no __iter__
            ta = fa.get_tensor(name).float().flatten()
            tb = fb.get_tensor(name).float().flatten()
            torch.nn.functional.cosine_similarity(ta, tb, dim=0).item()
    return time.perf_counter() - t


def run_numpy(a: Path, b: Path) -> None:
    """Fallback baseline without torch: load each tensor whole, numpy cosine."""
    from companion.audit.safetensors import SafetensorsFile, decode

    fa, fb = SafetensorsFile(a), SafetensorsFile(b)
    for name in fa.tensors:
        x = decode(fa.read(name), np.float32)
        y = decode(fb.read(name), np.float32)
        float(x @ y / np.sqrt((x @ x) * (y @ y)))


def run_companion(
    a: Path | str,
    b: Path | str,
    baselines: bool,
    permutation: bool = False,
    digests: bool = True,
    symmetry: str = "auto",
) -> float:
    """companion's audit through the registry (no store); returns the engine's own seconds.

    With `digests`, sha256 digests come from the digest cache when the files are unchanged
    since an earlier run (COMPANION_HOME is the bench's own folder); without, every input
    file is read and hashed."""
    from companion.settings import Settings
    from companion.toolbox import run_tool
    from companion.tools import ToolContext

    settings = Settings(store_enabled=False, audit_workers=2, digest_cache=digests)
    ctx = ToolContext(settings=settings)
    args = {
        "a": str(a),
        "b": str(b),
        "baselines": baselines,
        "permutation_test": permutation,
        "symmetry_tests": symmetry,
    }
    result = run_tool("audit.compare", args, ctx)
    return float(getattr(result, "seconds", None) or 0.0)


def proc_mb(path: str, key: str) -> float | None:
    """A "key: N kB" line of a /proc file, in MB (None without /proc or the key)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). ru_maxrss is not used: after a vfork-based
    spawn it also counts the parent's resident memory (the torch-importing bench)."""
    hwm = proc_mb("/proc/self/status", "VmHWM:")
    if hwm is not None:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, a: Path | str, b: Path | str, **env: str) -> dict[str, float]:
    """Run one measurement in a subprocess (COMPANION_HOME beside the pair, plus `env`);
    return seconds and peak RSS (MB). Mode "remote" takes URLs as `a` and `b`."""
    code = (
        "import sys, time, json; sys.path.insert(0, %r);"
        "import bench.audit_throughput as m;"
        "t = time.perf_counter(); e = %s; s = time.perf_counter() - t;"
        "rss = m.peak_rss_mb();"
        "print(json.dumps({'seconds': s, 'engine': e or s, 'rss_mb': rss}))"
    )
    call = {
        "torch": f"m.run_torch(m.Path({str(a)!r}), m.Path({str(b)!r}))",
        "numpy": f"m.run_numpy(m.Path({str(a)!r}), m.Path({str(b)!r}))",
        "audit": f"m.run_companion(m.Path({str(a)!r}), m.Path({str(b)!r}), False, False, False)",
        "audit, cached sha": f"m.run_companion(m.Path({str(a)!r}), m.Path({str(b)!r}), False)",
        "audit+baselines": f"m.run_companion(m.Path({str(a)!r}), m.Path({str(b)!r}), True)",
        "audit+perm.test": (f"m.run_companion(m.Path({str(a)!r}), m.Path({str(b)!r}), True, True)"),
        "audit (default)": (
            f"m.run_companion(m.Path({str(a)!r}), m.Path({str(b)!r}), True, True, True)"
        ),
        "default, first sight": (
            f"m.run_companion(m.Path({str(a)!r}), m.Path({str(b)!r}), True, True, True)"
        ),
        "default, tests forced": (
            f"m.run_companion(m.Path({str(a)!r}), m.Path({str(b)!r}), True, True, True, 'always')"
        ),
        "remote": f"m.run_companion({str(a)!r}, {str(b)!r}, False)",
        "get": f"m.formats.plain_get({str(a)!r}, {str(b)!r})",
    }[mode]
    home = env.pop("COMPANION_HOME", None) or str(Path(a).parent.parent / "home")
    env = dict(os.environ, COMPANION_HOME=home, **env)
    out = subprocess.run(
        [sys.executable, "-c", code % (str(REPO), call)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def median_row(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each measure over repeated runs."""
    return {k: statistics.median(r[k] for r in runs) for k in ("seconds", "engine", "rss_mb")}


def evict(*paths: Path) -> None:
    """Drop the files from the page cache (clean pages; no root needed)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def warm(*paths: Path) -> None:
    """Evict the files, then read them once in order, so they sit in the page cache as a
    sequential reader leaves them: in large folios where the kernel makes them (ext4 on
    Linux 6.16+), whatever state earlier runs left."""
    evict(*paths)
    for p in paths:
        with p.open("rb") as fh:
            while fh.read(1 << 24):
                pass


def warm_small(*paths: Path) -> None:
    """Evict the files, then read them in 64 KB reads with readahead off, so they sit in the
    page cache in small pages, as on kernels without large folios."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            size, off = os.fstat(fd).st_size, 0
            while off < size:
                off += len(os.pread(fd, 1 << 16, off)) or size
        finally:
            os.close(fd)


def huge_page_mb() -> float:
    """File pages the page cache holds in huge (PMD-sized) folios, in MB (0 if unknown)."""
    return proc_mb("/proc/meminfo", "FileHugePages:") or 0.0


def direct_bandwidth(path: Path) -> float | None:
    """O_DIRECT sequential read bandwidth in MB/s, via dd iflag=direct."""
    if shutil.which("dd") is None:
        return None
    evict(path)
    t = time.perf_counter()
    proc = subprocess.run(
        ["dd", f"if={path}", "of=/dev/null", "bs=4M", "iflag=direct"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return None
    copied = re.search(r"^(\d+) bytes", proc.stderr, re.M)
    return int(copied.group(1)) / 1e6 / (time.perf_counter() - t) if copied else None


def table(rows: dict[str, dict[str, float]], mb: float, base_mode: str) -> None:
    """Print the measurements with ratios to the baseline."""
    base_tp = mb / rows[base_mode]["seconds"]
    head = f"{'run':<26}{'wall s':>8}{'MB/s':>8}{'vs base':>9}{'engine s':>10}{'MB/s':>8}"
    print(f"\n{head}{'peak RSS MB':>13}")
    for mode, r in rows.items():
        tp, etp = mb / r["seconds"], mb / r["engine"]
        print(
            f"{mode:<26}{r['seconds']:>8.2f}{tp:>8.0f}{tp / base_tp:>8.2f}x"
            f"{r['engine']:>10.2f}{etp:>8.0f}{r['rss_mb']:>13.0f}"
        )


def rss_sweep(root: Path, sizes: list[int]) -> None:
    """Peak RSS of the audit (no baselines) at several sizes; files deleted after each."""
    print("\npeak RSS by checkpoint size (audit without baselines, cached):")
    for size in sizes:
        folder = root / f"sweep-{size}"
        a = generate(folder / "a", size, 0.0)
        b = generate(folder / "b", size, 0.3)
        warm(a, b)
        r = child("audit", a, b)
        total = (a.stat().st_size + b.stat().st_size) / 1e6
        print(
            f"  2 x {a.stat().st_size / 1e6:>6.0f} MB: {r['rss_mb']:>5.0f} MB peak RSS,"
            f" {total / r['engine']:>5.0f} MB/s engine"
        )
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    """Generate, measure, print."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-mb", type=int, default=1024, help="size of each checkpoint (MB)")
    ap.add_argument("--dir", type=Path, help="where to write the pair (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the generated files")
    ap.add_argument("--rss-sweep", default="", help="sizes in MB, e.g. 1024,4096")
    ap.add_argument("--cold-runs", type=int, default=5, help="cold runs (median reported)")
    ap.add_argument("--repeats", type=int, default=3, help="cached runs per mode (median)")
    ap.add_argument("--no-formats", action="store_true", help="skip the GGUF and remote rows")
    ns = ap.parse_args()
    # Byte-compile companion as pip does at install (torch's were compiled then): with
    # PYTHONDONTWRITEBYTECODE set, as on CI machines, every child would otherwise compile
    # every companion module it imports (~0.1 s) inside its timed call.
    compileall.compile_dir(str(REPO / "companion"), quiet=1)
    root = ns.dir or Path(tempfile.mkdtemp(prefix="audit-bench-"))
    try:
        t = time.perf_counter()
        a = generate(root / "a", ns.size_mb, 0.0)
        b = generate(root / "b", ns.size_mb, 0.3)
        mb = (a.stat().st_size + b.stat().st_size) / 1e6
        print(f"pair: 2 x {a.stat().st_size / 1e6:.0f} MB bf16 ({time.perf_counter() - t:.1f} s)")
        try:
            import torch  # noqa: F401

            base_mode = "torch"
        except ImportError:
            base_mode = "numpy"
            print(
                "NOTE: torch is not installed, so the baseline is a numpy per-tensor cosine,"
                " not the safe_open(framework='pt') peer script (pip install torch==2.13.0)"
            )
        # the default path first; then the peer; then faster, narrower options, labelled
        modes = ["audit (default)", base_mode, "audit, cached sha", "audit+baselines", "audit"]
        modes += ["default, tests forced", "default, first sight"]
        warm(a, b)
        print(f"page cache after warming: {huge_page_mb():.0f} MB of file pages in huge folios")
        child("audit", a, b)  # fills the digest cache for the "cached sha" runs
        runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
        for i in range(ns.repeats):  # interleaved, so drifts in machine speed hit all alike
            for mode in modes:
                warm(a, b)
                # first sight: an empty digest cache, so every byte is read and hashed
                fresh = {}
                if "first" in mode:  # emptied: a kept pair keeps its homes (--keep)
                    shutil.rmtree(root / f"home-{i}", ignore_errors=True)
                    fresh = {"COMPANION_HOME": str(root / f"home-{i}")}
                runs[mode].append(child(mode, a, b, **fresh))
        # The peer's mmap reads run much faster from large folios than from small pages;
        # both read from small pages here, labelled (the state lasts: neither changes it).
        warm_small(a, b)
        small = {base_mode: f"{base_mode}, small-page cache", "audit": "audit, small-page cache"}
        for _ in range(ns.repeats):
            for mode, label in small.items():
                runs.setdefault(label, []).append(child(mode, a, b))
        # Cold reads vary a lot on shared (virtual) disks: take medians of interleaved runs.
        # Each cold run is paired with the dd bandwidth measured just before it (both files),
        # so that a slow patch of the shared disk hits the run and its reference alike.
        disk: list[float] = []
        paired: dict[str, list[float]] = {}
        for _ in range(ns.cold_runs):
            for mode in ("audit", "audit, cached sha"):
                bw = [d for d in (direct_bandwidth(a), direct_bandwidth(b)) if d]
                disk += bw
                evict(a, b)
                run = child(mode, a, b)
                runs.setdefault(f"{mode} (cold)", []).append(run)
                if bw:
                    paired.setdefault(mode, []).append(mb / run["engine"] / statistics.mean(bw))
        if not ns.no_formats:
            formats.format_rows(root, a, b, runs, ns.repeats)
        rows = {m: median_row(r) for m, r in runs.items()}
        table(rows, mb, base_mode)
        base = rows[base_mode]["seconds"]
        loop = statistics.median(r["engine"] for r in runs[base_mode])
        d = rows["audit (default)"]
        print(
            f"\ndefault path vs {base_mode}: {base / d['seconds']:.2f}x whole process,"
            f" {loop / d['engine']:.2f}x loop time (peer loop {loop:.2f} s, engine"
            f" {d['engine']:.2f} s); targets >= 4x and >= 2x, peak RSS <= 512 MB"
        )
        for mode in ("audit", "audit, cached sha", "default, first sight"):
            print(
                f"\n{mode} vs {base_mode} baseline (cached data): "
                f"{base / rows[mode]['seconds']:.2f}x wall"
                f" ({base / rows[mode]['engine']:.2f}x on engine time)"
            )
        peer, ours = (rows[label]["seconds"] for label in small.values())
        print(f"\naudit vs {base_mode}, both from a small-page cache: {peer / ours:.2f}x wall")
        if disk:
            bw = statistics.median(disk)
            print(
                f"\nO_DIRECT disk bandwidth (dd, median of {len(disk)}): {bw:.0f} MB/s"
                f" (range {min(disk):.0f}-{max(disk):.0f})"
            )
            for mode in ("audit", "audit, cached sha"):
                cold = rows[f"{mode} (cold)"]
                each = ", ".join(f"{mb / c['engine']:.0f}" for c in runs[f"{mode} (cold)"])
                ratios = ", ".join(f"{r:.0%}" for r in paired.get(mode, []))
                print(
                    f"{mode} (cold): engine MB/s {each}; median reaches"
                    f" {mb / cold['engine'] / bw:.0%} of it on engine time,"
                    f" {mb / cold['seconds'] / bw:.0%} on wall time; each run against the dd run"
                    f" just before it: {ratios} (median"
                    f" {statistics.median(paired.get(mode, [0.0])):.0%})"
                )
        print("targets: cached audit >= 4x baseline; cold >= 90% of disk; peak RSS <= 512 MB")
        if ns.rss_sweep:
            rss_sweep(root, [int(x) for x in ns.rss_sweep.split(",") if x.strip()])
        return 0
    finally:
        if not ns.keep and ns.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
