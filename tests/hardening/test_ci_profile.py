"""Class 7: the test suite cannot flake on timing (no deadlines; CI derandomized)."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import settings

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent


def test_ci_profile_has_no_deadline_and_is_derandomized() -> None:
    ci = settings.get_profile("ci")
    assert ci.deadline is None and ci.derandomize and ci.database is None
    assert ci.max_examples <= 100
    assert settings.default.deadline is None


def test_no_test_sets_a_deadline() -> None:
    pattern = re.compile(r"deadline\s*=\s*(?!None)[\w.]")
    offenders = [
        str(p.relative_to(REPO))
        for p in TESTS.rglob("*.py")
        if "@settings" in (text := p.read_text()) and pattern.search(text)
    ]
    assert offenders == []


def test_make_installs_without_recommends_and_builds_vscode_once() -> None:
    make = (REPO / "Makefile").read_text().replace("\\\n", " ")  # join continued lines
    installs = [line for line in make.splitlines() if "apt-get install" in line]
    assert installs and all("--no-install-recommends" in line for line in installs)
    assert "apt-get update" in make
    e2e = (REPO / "scripts" / "e2e_vscode.sh").read_text()
    assert "up to date; not rebuilding" in e2e  # `make e2e-vscode` built it already
