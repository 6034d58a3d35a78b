"""The VS Code chat panel against the real model: tests/editors/vscode_real_llm_e2e.mjs drives
code-server + the packaged extension, aimed at the llama.cpp server this session started.
Needs code-server and the .vsix, which `make test-llm` installs and builds first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "editors" / "vscode_real_llm_e2e.mjs"
CODE_SERVER = Path(
    os.environ.get("CODE_SERVER", REPO / ".cache/code-server/node_modules/.bin/code-server")
)
VSIX = REPO / "editors" / "vscode" / "companion.vsix"
ALIAS = "smollm2-135m"  # the --model_alias the conftest fixture serves


@pytest.mark.timeout(1800)  # code-server start + a first token on a loaded machine; bounded
def test_vscode_chat_panel_shows_a_real_answer(llama_server: str) -> None:
    """The panel streams SmolLM2's answer (no error bubble) and saves a screenshot."""
    for need, how in ((CODE_SERVER, "bash scripts/install_code_server.sh"),
                      (VSIX, "bash scripts/vscode_build.sh")):  # fmt: skip
        if not need.exists():
            pytest.fail(f"{need} is missing: run {how} (make test-llm does)")
    env = {
        **os.environ,
        "COMPANION_E2E_LLM_URL": f"{llama_server}/v1",
        "COMPANION_E2E_LLM_MODEL": ALIAS,
        "PYTHON": sys.executable,
        "CODE_SERVER": str(CODE_SERVER),
        "VSIX": str(VSIX),
        "ARTIFACTS": os.environ.get("ARTIFACTS", str(REPO / "test-artifacts")),
    }
    out = subprocess.run(
        ["node", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=1700, check=False
    )
    print(out.stdout, out.stderr, sep="\n")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert "1 passed, 0 failed" in out.stdout
