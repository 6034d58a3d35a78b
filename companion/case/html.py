"""The HTML dossier: one self-contained file (inline CSS, pictures as data URIs, no URLs)."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from companion.case.schemas import CaseResult

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 24px auto;
  padding: 0 16px; color: #1d1d1f; }
.verdict { padding: 14px 18px; border-radius: 8px; font-size: 20px; margin: 12px 0; }
.derived { background: #fde2e1; border: 2px solid #c62828; }
.independent { background: #e1f5e4; border: 2px solid #2e7d32; }
.inconclusive { background: #fff4d6; border: 2px solid #b08900; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } code { font-size: 12px; word-break: break-all; }
figure { margin: 16px 0; } figcaption { color: #555; font-size: 13px; }
img { max-width: 100%; border: 1px solid #ddd; }
"""
BAND_SDS = 3.0


def _data_uri(png: bytes) -> str:
    """A PNG as a data: URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def similarity_png(r: CaseResult) -> bytes | None:
    """Per-layer raw cosine and Pearson of the norm gains, with the shuffle-null band."""
    if not r.layers:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    pts = sorted(r.layers, key=lambda p: (p.role, p.layer))
    fig = Figure(figsize=(9, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for role, marker in zip(sorted({p.role for p in pts}), "os^vD", strict=False):
        mine = [p for p in pts if p.role == role]
        xs = [p.layer for p in mine]
        lo = [(p.null_mean or 0.0) - BAND_SDS * (p.null_sd or 0.0) for p in mine]
        hi = [(p.null_mean or 0.0) + BAND_SDS * (p.null_sd or 0.0) for p in mine]
        ax.fill_between(xs, lo, hi, color="#999", alpha=0.25, lw=0)
        ax.plot(
            xs,
            [math.nan if p.cosine is None else p.cosine for p in mine],
            marker,
            ms=4,
            color="#d62728",
            label=f"raw cosine · {role}",
        )
        ax.plot(
            xs,
            [math.nan if p.pearson is None else p.pearson for p in mine],
            marker,
            ms=4,
            color="#1f77b4",
            label=f"Pearson · {role}",
        )
    ax.fill_between([], [], [], color="#999", alpha=0.25, label=f"shuffle null ±{BAND_SDS:g} sd")
    ax.axhline(0.0, color="#555", lw=0.6)
    ax.set_ylim(-0.15, 1.05)
    ax.set_xlabel("layer (A's numbering)")
    ax.set_ylabel("similarity A vs B")
    ax.set_title("Norm gains per layer: raw cosine vs mean-centred Pearson")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _figure(png: bytes, alt: str, caption: str) -> str:
    """An <img> figure with its caption."""
    return (
        f'<figure><img alt="{html.escape(alt)}" src="{_data_uri(png)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def figures(r: CaseResult, plots: Path | None) -> list[str]:
    """The pictures: per-layer similarity, then each loss curve with its ln V line."""
    out = []
    sim = similarity_png(r)
    if sim is not None:
        out.append(
            _figure(
                sim,
                "per-layer similarity",
                "Raw cosine sits near 0.99 for any pair of models (gains share a positive "
                "offset); Pearson inside the grey shuffle band means unrelated, far above it "
                "means related.",
            )
        )
    for side in ("a", "b"):
        png = None if plots is None else plots / f"loss-{side}.png"
        if png is not None and png.is_file():
            caption = f"Training loss of {side.upper()} with the ln V line (a random start)."
            out.append(_figure(png.read_bytes(), f"loss curve {side.upper()}", caption))
    return out


def render_html(r: CaseResult, plots: Path | None) -> str:
    """The whole dossier as one HTML page."""
    from markdown_it import MarkdownIt

    md = r.to_markdown()
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    banner = (
        f'<div class="verdict {r.verdict}"><b>Verdict: {html.escape(r.verdict)}</b> — '
        f"{html.escape(r.headline)}</div>"
    )
    if r.claim is not None:
        banner += (
            f'<p class="claim">Claim “{html.escape(r.claim)}”: the evidence '
            f"<b>{html.escape(str(r.claim_verdict))}</b> it.</p>"
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Dossier: {html.escape(r.case)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(r.case)}</h1>{banner}{''.join(figures(r, plots))}{body}"
        "</body></html>\n"
    )
