"""editors/helix/languages.toml: valid TOML whose languages route our files to `companion serve`."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import tomllib

from helpers.editors import EDITORS

CONFIG = EDITORS / "helix" / "languages.toml"


def _globs(language: dict[str, object]) -> list[str]:
    types = language.get("file-types", [])
    assert isinstance(types, list)
    return [t["glob"] if isinstance(t, dict) else f"*.{t}" for t in types]


def test_helix_languages_route_companion_files() -> None:
    data = tomllib.loads(CONFIG.read_text())
    server = data["language-server"]["companion"]
    assert [server["command"], *server["args"]] == ["companion", "serve"]
    assert set(server["config"]["llm"]) <= {"baseUrl", "model", "apiKeyEnv"}  # never a key
    languages = {lang["name"]: lang for lang in data["language"]}
    for lang in languages.values():
        assert "companion" in lang["language-servers"]
        assert lang["roots"] == []
    expected = {
        "model-config": ["config.json", "model.safetensors.index.json", "trainer_state.json"],
        "training-log": ["train.log", "output.log"],
        "companion-chat": ["notes.chat.md"],
    }
    for name, files in expected.items():
        for f in files:
            assert any(fnmatch.fnmatch(f, g) for g in _globs(languages[name])), (name, f)
    assert not any(fnmatch.fnmatch("README.md", g) for g in _globs(languages["companion-chat"]))


def test_helix_server_command_is_installed() -> None:
    """The command the snippet names exists in this environment and starts the LSP server."""
    exe = shutil.which("companion") or str(EDITORS.parent / ".venv" / "bin" / "companion")
    proc = subprocess.run([exe, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--stdio" in proc.stdout + proc.stderr
