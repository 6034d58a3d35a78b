"""Settings read from the environment: names, precedence, case, empty and invalid values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from companion.errors import ConfigError
from companion.settings import Settings, env_names, from_editor, load_settings


@pytest.fixture(autouse=True)
def _no_setting_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable a setting reads (in any case) leaks in from the caller's environment."""
    names = {e for n, f in Settings.model_fields.items() for e in env_names(n, f)}
    names |= {"LLM_BASE_URL", "LLM_MODEL"}
    for key in list(os.environ):
        if key.upper() in names:
            monkeypatch.delenv(key)


def test_each_field_reads_its_companion_variable_as_typed_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COMPANION_HOME", str(tmp_path))
    monkeypatch.setenv("COMPANION_SCAN_MAX_FILES", "12")
    monkeypatch.setenv("COMPANION_LLM_TIMEOUT_S", "1.5")
    monkeypatch.setenv("COMPANION_REMOTE_BANDWIDTH", "4096")
    s = Settings()
    assert s.home == tmp_path and s.scan_max_files == 12
    assert s.llm_timeout_s == 1.5 and s.remote_bandwidth == 4096
    assert Settings.model_fields["home"].default is None  # the class default is untouched


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False)]
)
def test_boolean_variables(monkeypatch: pytest.MonkeyPatch, text: str, value: bool) -> None:
    monkeypatch.setenv("COMPANION_STORE_ENABLED", text)
    monkeypatch.setenv("COMPANION_REMOTE_FULL_DOWNLOAD", text)
    s = Settings()
    assert s.store_enabled is value and s.remote_full_download is value


def test_keywords_beat_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COMPANION_SCAN_MAX_FILES", "12")
    monkeypatch.setenv("COMPANION_HOME", str(tmp_path))
    monkeypatch.setenv("COMPANION_LLM_BASE_URL", "http://env/v1")
    assert Settings(scan_max_files=3).scan_max_files == 3
    assert Settings(home=None).home is None  # an explicit None is a given value too
    assert Settings(llm_base_url="http://kw/v1").llm_base_url == "http://kw/v1"
    assert Settings(OPENAI_BASE_URL="http://alias/v1").llm_base_url == "http://alias/v1"
    monkeypatch.setenv("COMPANION_SCAN_MAX_FILES", "not a number")
    assert Settings(scan_max_files=5).scan_max_files == 5  # an overridden variable is not read


def test_editor_values_beat_the_environment_which_fills_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COMPANION_LLM_MODEL", "from-env")
    s, problems = from_editor({"scanMaxFiles": 3})
    assert (s.llm_model, s.scan_max_files, problems) == ("from-env", 3, [])
    s, _ = from_editor({"llm": {"model": "from-editor"}})
    assert s.llm_model == "from-editor"


def test_aliases_are_read_in_their_declared_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai/v1")
    assert Settings().llm_base_url == "http://openai/v1"
    monkeypatch.setenv("COMPANION_LLM_BASE_URL", "http://companion/v1")
    assert Settings().llm_base_url == "http://companion/v1"
    monkeypatch.setenv("COMPANION_HF_ENDPOINT", "https://companion.example")
    assert Settings().hf_endpoint == "https://companion.example"
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example")  # as huggingface_hub reads it
    assert Settings().hf_endpoint == "https://hub.example"


def test_variable_names_match_in_any_case(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("companion_home", str(tmp_path))
    monkeypatch.setenv("Companion_Log_Level", "DEBUG")
    monkeypatch.setenv("openai_base_url", "http://lower/v1")
    s = Settings()
    assert (s.home, s.log_level, s.llm_base_url) == (tmp_path, "DEBUG", "http://lower/v1")


def test_only_the_documented_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL", "bare-field-name")
    monkeypatch.setenv("LLM_BASE_URL", "http://bare/v1")
    monkeypatch.setenv("COMPANION_FROBNICATE", "1")
    s = Settings()
    assert s.llm_model is None and s.llm_base_url is None
    assert env_names("llm_base_url", Settings.model_fields["llm_base_url"]) == [
        "COMPANION_LLM_BASE_URL",
        "OPENAI_BASE_URL",
    ]


def test_empty_values_are_passed_to_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPANION_HOME", "")
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    s = Settings()
    assert s.home == Path("") and s.llm_base_url == ""
    monkeypatch.setenv("COMPANION_SCAN_MAX_FILES", "")
    with pytest.raises(ConfigError, match="scan_max_files: Input should be a valid integer"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "field", "says"),
    [
        ("COMPANION_SCAN_MAX_FILES", "abc", "scan_max_files", "valid integer"),
        ("COMPANION_AUDIT_WORKERS", "0", "audit_workers", "greater than or equal to 1"),
        ("COMPANION_STORE_ENABLED", "maybe", "store_enabled", "valid boolean"),
        ("COMPANION_STORE_URL", "mysql://db", "store_url", "should match pattern"),
        ("HF_ENDPOINT", "ftp://hub", "hf_endpoint", "should match pattern"),
        ("COMPANION_LLM_API_KEY_ENV", "PATH", "llm_api_key_env", "'PATH' is not a key variable"),
    ],
)
def test_an_invalid_variable_is_a_config_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raw:
        Settings()
    assert [e["loc"] for e in raw.value.errors()] == [(field,)]
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert exc.value.message.startswith(f"Invalid settings in the environment: {field}: ")
    assert says in exc.value.message and exc.value.hint is not None


def _imported_by(code: str) -> str:
    """What a fresh interpreter prints after running `code`."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return run.stdout.strip()


def test_importing_settings_loads_neither_asyncio_nor_pydantic_settings() -> None:
    code = "import companion.settings, sys; "
    code += "print('asyncio' in sys.modules, 'pydantic_settings' in sys.modules)"
    assert _imported_by(code) == "False False"


def test_the_cli_parser_does_not_load_asyncio() -> None:
    code = "import sys; from companion.cli.main import build_parser; "
    code += "p = build_parser(with_tools=True); "
    code += "print('asyncio' in sys.modules, 'chat' in p.format_help())"
    assert _imported_by(code) == "False True"


def test_a_cli_tool_run_with_an_invalid_variable_says_which_and_exits_2(tmp_path: Path) -> None:
    env = dict(os.environ, COMPANION_HOME=str(tmp_path), COMPANION_SCAN_MAX_FILES="abc")
    cmd = [sys.executable, "-m", "companion", "scan", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert run.returncode == 2, run.stderr
    assert "Invalid settings in the environment: scan_max_files" in run.stderr
    assert "internal error" not in run.stderr and "COMPANION_* variable" in run.stderr
