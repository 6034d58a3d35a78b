"""The built wheel ships the top-level prompts/ as package data that an installed copy finds."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_installed_wheel_outside_the_repository_finds_the_prompts(tmp_path: Path) -> None:
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    dist = tmp_path / "dist"
    subprocess.run([*build, "-w", str(dist), str(REPO)], check=True, capture_output=True)
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "companion/prompts/system.md" in names
    assert not any(n.startswith("prompts/") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r}); "
        "from companion.llm.context import prompts_dir, template; "
        "print(prompts_dir()); print(template('system').split()[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=outside, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0].startswith(str(site)), out
    assert out[1] == "You"
