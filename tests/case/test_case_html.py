"""The HTML dossier: one self-contained file, rendered by a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from companion.case.schemas import CaseResult
from companion.tools import ToolContext

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def dossier(family: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HTML dossier of a generated pair with B's log."""
    from companion.settings import Settings
    from companion.toolbox import context

    out = tmp_path_factory.mktemp("html")
    ctx = context(Settings(home=out / "home"), [out])
    args = {
        "a": str(family["base"]),
        "b": str(family["independent"]),
        "logs_b": [str(family["scratch_log"])],
        "claimed": "trained from scratch",
        "html": str(out / "dossier.html"),
    }
    result = ctx.run("case.investigate", args)
    assert isinstance(result, CaseResult) and result.html_path == str(out / "dossier.html")
    return out / "dossier.html"


def test_html_is_self_contained_with_verdict_and_plots(dossier: Path) -> None:
    text = dossier.read_text(encoding="utf-8")
    assert "Verdict: independent" in text and "supports" in text
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', text)
    assert len(images) >= 2  # per-layer similarity with its null band, and B's loss curve
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched: opens offline
    assert "<style>" in text and "<link" not in text
    assert "Traps" in text and "What would change the verdict" in text


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make system-deps)")
def test_chromium_renders_the_dossier(dossier: Path, tmp_path: Path, ctx: ToolContext) -> None:
    from matplotlib import image

    shot = tmp_path / "dossier.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            dossier.as_uri(),
        ],
        capture_output=True,
        timeout=180,
        check=True,
    )
    pixels = image.imread(str(shot))
    assert pixels.shape[0] == 2400 and pixels.shape[1] == 1200
    assert shot.stat().st_size > 50_000
    rgb = pixels[..., :3].reshape(-1, 3)
    assert float(rgb.std(axis=0).max()) > 0.1  # not a blank page
    # The verdict banner (green for independent) is drawn near the top of the page.
    top = pixels[:400, :, :3]
    green = (top[..., 1] > top[..., 0] + 0.05) & (top[..., 1] > top[..., 2] + 0.03)
    assert green.sum() > 5000
