"""The newcomer's path: each friction point found by trying the product as a new user would."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from helpers.rawlsp import run_cli

from companion.architecture.catalog import catalog
from companion.audit import synth
from companion.cli.main import EXIT_CODES, build_parser

REPO = Path(__file__).resolve().parents[2]


def _plain_env(home: Path) -> dict[str, str]:
    """A user's environment: no COMPANION_* variables, a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPANION_", "OPENAI_"))}
    return {**env, "HOME": str(home), "XDG_DATA_HOME": str(home / ".local/share")}


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m companion ARGS` with exactly this environment."""
    return subprocess.run(
        [sys.executable, "-m", "companion", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=cwd,
    )


def test_demo_ids_work_in_query_and_verify_with_no_extra_environment(tmp_path: Path) -> None:
    env = _plain_env(tmp_path / "user")
    env["PYTHONPATH"] = str(REPO)
    demo = _run(["demo", "demo-workspace"], env, tmp_path)
    assert demo.returncode == 0, demo.stderr
    lines = demo.stdout.splitlines()
    assert len(lines) < 60  # a summary, not 765 lines of per-tensor tables
    assert "Dossier (HTML, opens offline):" in demo.stdout
    assert "case: was Solar-Open-100B derived from GLM-4.5-Air?: independent" in demo.stdout
    verify_line = next(x for x in lines if re.search(r"companion verify [0-9a-f]{12}$", x))
    assert any(x.strip().endswith("companion query") for x in lines)
    record = verify_line.split()[-1]
    assert (tmp_path / "demo-workspace/reports/solar-dossier.html").is_file()
    query = _run(["query", "--json"], env, tmp_path)
    assert query.returncode == 0, query.stderr
    assert record in {r["id"] for r in json.loads(query.stdout)}
    verify = _run(["verify", record], env, tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "reproduced" in verify.stdout


def test_verify_mismatch_has_its_own_exit_code(tmp_path: Path) -> None:
    paths = synth.family(tmp_path / "m")
    out = run_cli("audit", str(paths["base"]), str(paths["finetune"]), "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)["record_id"]
    weights = paths["finetune"] / "model.safetensors"
    synth.save(paths["finetune"], synth.base(synth.Spec(), seed=7), synth.Spec())
    assert weights.is_file()
    verify = run_cli("verify", record)
    assert verify.returncode == EXIT_CODES["mismatch"] == 3, verify.stderr


def test_fail_on_gates_a_verdict(tmp_path: Path) -> None:
    paths = synth.family(tmp_path / "m")
    args = ["investigate", str(paths["base"]), str(paths["independent"]), "--no-store"]
    assert run_cli(*args).returncode == 0
    gated = run_cli(*args, "--fail-on", "derived,independent")
    assert gated.returncode == EXIT_CODES["independent"] == 5
    assert run_cli(*args, "--fail-on", "derived").returncode == 0
    bad = run_cli(*args, "--fail-on", "nonsense")
    assert bad.returncode == 2 and "--fail-on" in bad.stderr


def test_redirected_markdown_is_raw(tmp_path: Path) -> None:
    paths = synth.family(tmp_path / "m")
    out = run_cli("investigate", str(paths["base"]), str(paths["finetune"]), "--no-store")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# Dossier:")
    assert "| evidence | tool | shows |" in out.stdout  # a markdown table, not box drawing
    assert re.search(r"`[0-9a-f]{64}`", out.stdout)  # hashes whole, never cut with …
    assert "━" not in out.stdout and "\x1b[" not in out.stdout


def test_progress_only_on_a_terminal_unless_asked(tmp_path: Path) -> None:
    paths = synth.family(tmp_path / "m")
    args = ["audit", str(paths["base"]), str(paths["finetune"]), "--no-store", "--json"]
    quiet = run_cli(*args)
    assert quiet.returncode == 0 and quiet.stderr == ""
    forced = run_cli(*args, "--progress", env={"COLUMNS": "120"})
    assert forced.returncode == 0 and forced.stderr != ""
    json.loads(forced.stdout)  # stdout stays the result alone


def test_help_shows_defaults_choices_and_serve_has_a_description() -> None:
    query = run_cli("query", "--help")
    assert "(default: " in query.stdout
    assert re.search(r"\{[a-z_]+(,[a-z_]+)+\}", query.stdout), query.stdout  # Literal choices
    serve = run_cli("serve", "--help")
    assert "language server for an editor" in serve.stdout and "default: 2087" in serve.stdout


def test_roles_comma_list_does_not_swallow_positionals() -> None:
    ns = build_parser().parse_args(["audit", "--roles", "norm,attn", "A", "B"])
    assert ns.roles == ["norm", "attn"] and (ns.a, ns.b) == ("A", "B")
    ns = build_parser().parse_args(["investigate", "A", "B", "--logs-b", "x.log", "--logs-b", "y"])
    assert ns.logs_b == ["x.log", "y"]


def test_neovim_root_is_not_the_repository() -> None:
    lua = (REPO / "editors/neovim/lua/companion/init.lua").read_text(encoding="utf-8")
    markers = re.search(r"root_markers = \{([^}]*)\}", lua)
    assert markers is not None and ".git" not in markers.group(1)


def test_catalog_sources_name_no_internal_path() -> None:
    for entry in catalog():
        assert "fixtures" not in entry.source and "../" not in entry.source, entry.name


def test_serve_tcp_port_0_logs_the_bound_port(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "companion", "serve", "--tcp", "--port", "0", "--log-file", str(log)]
    )
    try:
        port = None
        for _ in range(300):
            found = re.search(r"127\.0\.0\.1', (\d+)\)", log.read_text() if log.exists() else "")
            if found:
                port = int(found.group(1))
                break
            time.sleep(0.05)
        assert port is not None and port != 0
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_distribution_name_license_changelog_and_urls() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["name"] == "companion-forensics"
    assert meta["license"] == "Apache-2.0" and (REPO / "LICENSE").is_file()
    assert "Apache License" in (REPO / "LICENSE").read_text(encoding="utf-8")
    assert {"Homepage", "Changelog", "Issues"} <= set(meta["urls"])
    assert (REPO / "CHANGELOG.md").is_file()
    vscode = json.loads((REPO / "editors/vscode/package.json").read_text(encoding="utf-8"))
    assert vscode["license"] == "Apache-2.0"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "pipx install companion-forensics" in readme and "uv tool install" in readme
    assert "### Exit codes" in readme and "--fail-on" in readme


@pytest.mark.parametrize("outcome", ["derived", "independent", "inconclusive", "mismatch"])
def test_exit_codes_are_distinct(outcome: str) -> None:
    codes = [EXIT_CODES[o] for o in ("mismatch", "derived", "independent", "inconclusive")]
    assert len(set(codes)) == 4 and EXIT_CODES[outcome] not in (0, 2)
