"""Settings: editor JSON (camelCase, nested), environment variables and invalid input."""

from __future__ import annotations

from pathlib import Path

import pytest

from companion.settings import Settings, from_editor


def test_camel_case_and_nested_editor_settings() -> None:
    s, problems = from_editor({"llm": {"baseUrl": "http://127.0.0.1:1/v1"}, "scanMaxFiles": 7})
    assert s.llm_base_url == "http://127.0.0.1:1/v1" and s.scan_max_files == 7
    assert problems == []
    s, _ = from_editor({"companion": {"llmModel": "m", "logLevel": "DEBUG"}})
    assert s.llm_model == "m" and s.log_level == "DEBUG"


def test_invalid_settings_fall_back_to_defaults() -> None:
    s, problems = from_editor({"scanMaxFiles": -1, "llmApiKeyEnv": "not a name"})
    assert s == Settings()
    assert any("scan_max_files" in p for p in problems)
    assert any("llm_api_key_env" in p for p in problems)
    s, problems = from_editor(["not", "an", "object"])
    assert s == Settings() and "must be an object" in problems[0]


def test_unknown_settings_are_reported_not_fatal() -> None:
    s, problems = from_editor({"frobnicate": 1, "scanMaxFiles": 3})
    assert s.scan_max_files == 3 and problems == ["unknown setting 'frobnicate' ignored"]


def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert Settings().llm_base_url == "http://127.0.0.1:9/v1"
    monkeypatch.setenv("COMPANION_LLM_BASE_URL", "http://127.0.0.1:8/v1")
    monkeypatch.setenv("COMPANION_LLM_MODEL", "tiny")
    monkeypatch.setenv("COMPANION_HOME", str(tmp_path))
    s = Settings()
    assert s.llm_base_url == "http://127.0.0.1:8/v1" and s.llm_model == "tiny"
    assert s.resolved_store_path() == tmp_path / "store.sqlite3"


def test_docs_settings_md_is_generated_from_the_model() -> None:
    from companion.settings import settings_markdown

    docs = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
    assert docs.read_text(encoding="utf-8") == settings_markdown(), (
        "docs/settings.md is stale: run `python -m companion.settings > docs/settings.md`"
    )
