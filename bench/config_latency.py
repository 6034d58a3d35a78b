"""Config-editing latency: hover, code lens and diagnostics on a ~100 KB config.json.

Drives a real `companion serve` subprocess over stdio with a raw JSON-RPC client. Baseline,
measured in the same run: a hover on a small plain-text document (a request the server answers
without any provider work). Diagnostics are timed from didChange+didSave (new text each time,
so the document is re-parsed) to the matching publishDiagnostics. Target: p95 <= 30 ms over
1,000 requests each. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.rawlsp import RawServer
from lsp_latency import pct

from companion.architecture.catalog import find


def big_config(target_bytes: int = 100_000) -> dict[str, Any]:
    """A gpt-oss-120b config padded with label maps to about `target_bytes` of JSON."""
    cfg: dict[str, Any] = dict(find("gpt-oss-120b").config)
    cfg["layer_types"] = ["sliding_attention", "full_attention"] * 18
    cfg["rope_scaling"] = {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0}
    n = 0
    cfg["id2label"] = {}
    while len(json.dumps(cfg, indent=2)) < target_bytes:
        for _ in range(100):
            cfg["id2label"][str(n)] = f"LABEL_{n}"
            n += 1
    return cfg


def position(text: str, needle: str) -> dict[str, int]:
    """LSP position one character into `needle`."""
    off = text.index(needle) + 1
    return {"line": text.count("\n", 0, off), "character": off - (text.rfind("\n", 0, off) + 1)}


def timed_requests(s: RawServer, method: str, params_list: list[dict[str, Any]]) -> list[float]:
    """Seconds per sequential request."""
    out = []
    for params in params_list:
        t = time.perf_counter()
        rid = s.send(method, params)
        reply = s.response(rid)
        out.append(time.perf_counter() - t)
        if "error" in reply:
            raise RuntimeError(reply["error"])
    return out


def diagnostics_latency(s: RawServer, uri: str, text: str, n: int) -> list[float]:
    """Seconds from didChange+didSave to the publishDiagnostics of that version."""
    out = []
    for i in range(n):
        version = 100 + i
        new = text.replace('"vocab_size": 201088', f'"vocab_size": {201088 + i % 7}')
        t = time.perf_counter()
        s.send(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": new}]},
            notify=True,
        )
        s.send("textDocument/didSave", {"textDocument": {"uri": uri}}, notify=True)
        for _ in range(50):  # bounded: skip other notifications
            msg = s.read()
            p = msg.get("params") or {}
            if (
                msg.get("method") == "textDocument/publishDiagnostics"
                and p.get("uri") == uri
                and p.get("version") == version
            ):
                break
        else:
            raise RuntimeError("no diagnostics published")
        out.append(time.perf_counter() - t)
    return out


def run(n: int) -> None:
    """Measure hover, code lens and diagnostics `n` times each and print the report."""
    with tempfile.TemporaryDirectory() as d:
        ws = Path(d)
        text = json.dumps(big_config(), indent=2)
        cfg = ws / "model" / "config.json"
        cfg.parent.mkdir()
        cfg.write_text(text, encoding="utf-8")
        plain = ws / "notes.txt"
        plain.write_text("hello\n", encoding="utf-8")
        s = RawServer(env={"COMPANION_HOME": str(ws / ".home")})
        try:
            s.initialize(ws.as_uri())
            uri, plain_uri = cfg.as_uri(), plain.as_uri()
            for u, t, lang in ((uri, text, "json"), (plain_uri, "hello\n", "plaintext")):
                item = {"uri": u, "languageId": lang, "version": 1, "text": t}
                s.send("textDocument/didOpen", {"textDocument": item}, notify=True)
            doc = {"uri": plain_uri}
            warm = [{"textDocument": doc, "position": {"line": 0, "character": 1}}] * 50
            timed_requests(s, "textDocument/hover", warm)
            base = timed_requests(s, "textDocument/hover", warm * (n // 50))
            keys = [
                '"hidden_size"',
                '"num_experts_per_tok"',
                '"num_key_value_heads"',
                '"vocab_size"',
                '"layer_types"',
                '"model_type"',
                '"rope_scaling"',
                '"factor"',
            ]
            hovers = [
                {"textDocument": {"uri": uri}, "position": position(text, keys[i % len(keys)])}
                for i in range(n)
            ]
            for h in hovers[: len(keys)]:  # every timed hover must really answer
                if not s.response(s.send("textDocument/hover", h)).get("result"):
                    raise RuntimeError(f"empty hover at {h['position']}")
            hover = timed_requests(s, "textDocument/hover", hovers)
            lens = timed_requests(s, "textDocument/codeLens", [{"textDocument": {"uri": uri}}] * n)
            diag = diagnostics_latency(s, uri, text, n)
        finally:
            s.kill()
    print(f"config size                        : {len(text):,} bytes")
    b50, b95 = pct(base, 0.5), pct(base, 0.95)
    print(f"baseline hover on plain text       : p50 {b50:7.2f} ms   p95 {b95:7.2f} ms")
    for name, lat in (("hover", hover), ("code lens", lens), ("diagnostics (edit->publish)", diag)):
        p50, p95 = pct(lat, 0.5), pct(lat, 0.95)
        verdict = "OK" if p95 <= 30 else "OVER"
        print(
            f"{name:35s}: p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   "
            f"({p95 / max(pct(base, 0.95), 1e-6):.1f}x baseline p95; target p95 <= 30 ms) {verdict}"
        )
    mean = statistics.mean(base) * 1000
    print(f"requests per figure                : {n}; mean baseline {mean:.2f} ms")


def main() -> None:
    """Parse arguments and run."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=1000)
    run(ap.parse_args().requests)


if __name__ == "__main__":
    main()
