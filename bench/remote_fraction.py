"""Benchmark: how many bytes a remote audit fetches for the roles it is given, and a repeat.

Writes two bf16 pairs of about `--size-mb` each (B = A + noise): a dense Llama-like layout
(bench/audit_throughput.py's generator: attention is a third of every layer) and a
mixture-of-experts layout (GQA attention, `--experts` routed experts per layer, router), serves
them from a loopback HTTP server on 127.0.0.1 (Range requests), and audits each pair by URL
with `--roles norm,attn` and then `--roles norm`, twice each with one range cache: the first
run fetches, the repeat should fetch nothing. Prints the bytes fetched as a share of both
files. Asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.audit_formats import write_bf16  # noqa: E402 - needs the repo on the path


def moe_layout(size_mb: int, experts: int) -> list[tuple[str, tuple[int, ...]]]:
    """GQA attention (16 heads, 4 K/V heads of 64) and `experts` SwiGLU experts per layer."""
    h, kv, inter, vocab = 1024, 256, 512, 32000
    per_layer = (2 * h * h + 2 * h * kv + experts * 3 * h * inter + experts * h + 2 * h) * 2
    layers = max(1, (size_mb * 2**20 - 2 * vocab * h * 2) // per_layer)
    out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, h))]
    for i in range(int(layers)):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,))]
        out += [(p + f"self_attn.{x}_proj.weight", (h, h)) for x in ("q", "o")]
        out += [(p + f"self_attn.{x}_proj.weight", (kv, h)) for x in ("k", "v")]
        out.append((p + "mlp.gate.weight", (experts, h)))
        for e in range(experts):
            q = p + f"mlp.experts.{e}."
            out += [(q + "gate_proj.weight", (inter, h)), (q + "up_proj.weight", (inter, h))]
            out.append((q + "down_proj.weight", (h, inter)))
    return [*out, ("model.norm.weight", (h,)), ("lm_head.weight", (vocab, h))]


def audit(urls: list[str], roles: list[str], cache: Path) -> tuple[float, int, str]:
    """One remote audit through the registry: seconds, bytes of the ranges read, last fetch note."""
    from companion.settings import Settings
    from companion.toolbox import run_tool
    from companion.tools import ToolContext

    notes: list[str] = []
    ctx = ToolContext(settings=Settings(store_enabled=False, remote_cache_dir=cache))
    ctx.progress = lambda message, fraction=None: notes.append(message)
    t = time.perf_counter()
    result = run_tool("audit.compare", {"a": urls[0], "b": urls[1], "roles": roles}, ctx)
    seconds = time.perf_counter() - t
    ranges = sum(e - b for f in result.manifest.inputs for b, e in (f.ranges or []))
    fetched = [n for n in notes if n.startswith("fetched") or "range cache" in n]
    return seconds, ranges, f"{result.verdict}; {fetched[-1] if fetched else 'no fetch note'}"


def main() -> int:
    """Write, serve, audit, print."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-mb", type=int, default=1024, help="size of each checkpoint (MB)")
    ap.add_argument("--experts", type=int, default=32, help="routed experts per MoE layer")
    ns = ap.parse_args()
    import bench.audit_throughput as dense
    from bench.audit_formats import serve_files

    root = Path(tempfile.mkdtemp(prefix="remote-fraction-"))
    try:
        layouts = {"dense": dense.shapes(ns.size_mb), "moe": moe_layout(ns.size_mb, ns.experts)}
        for kind, layout in layouts.items():
            files = [
                write_bf16(root / kind / s / "model.safetensors", layout, n)
                for s, n in (("a", 0.0), ("b", 0.3))
            ]
            total = sum(f.stat().st_size for f in files)
            with serve_files(root) as base:
                urls = [f"{base}/{f.relative_to(root)}" for f in files]
                for roles in (["norm", "attn"], ["norm"]):
                    cache = root / f"cache-{kind}-{'-'.join(roles)}"
                    for run in ("first", "repeat"):
                        s, ranges, note = audit(urls, roles, cache)
                        share = 100 * ranges / total
                        print(
                            f"{kind:<6} 2 x {total / 2e6:.0f} MB  roles {','.join(roles):<10}"
                            f" {run:<7} {s:5.1f} s  ranges {ranges / 1e6:7.1f} MB = {share:5.2f}%"
                            f" of the bytes  ({note})"
                        )
            shutil.rmtree(root / kind, ignore_errors=True)
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
