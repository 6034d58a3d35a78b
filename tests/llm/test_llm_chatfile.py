"""Chat-file parsing and the CLI's not-configured path."""

from __future__ import annotations

from pathlib import Path

from helpers.rawlsp import run_cli

from companion.server.chat_file import _units, parse_chat


def test_parse_chat_finds_history_and_the_pending_question() -> None:
    text = (
        "# Chat\n\nintro\n\n## You\n\nq1\n\n## companion\n\na1\n\n> Note: dropped\n\n"
        "## You\n\n  \n\n## you\n\nq2 line 1\nline 2\n"
    )
    history, question, line = parse_chat(text)
    assert history == [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]
    assert question == "q2 line 1\nline 2"
    assert text.splitlines()[line or 0] == "## you"


def test_parse_chat_without_a_pending_question() -> None:
    assert parse_chat("## You\n\nq\n\n## companion\n\na\n\n## You\n\n")[1] is None
    assert parse_chat("no headings at all")[1] is None


def test_position_units_follow_the_negotiated_encoding() -> None:
    assert _units("a😀é", "utf-16") == 4
    assert _units("a😀é", "utf-8") == 7
    assert _units("a😀é", "utf-32") == 3


def test_cli_chat_not_configured_gives_ready_settings(tmp_path: Path) -> None:
    env = {
        "COMPANION_HOME": str(tmp_path),
        "COMPANION_LLM_BASE_URL": "",
        "OPENAI_BASE_URL": "",
        "COMPANION_LLM_MODEL": "",
    }
    out = run_cli("chat", "was it derived?", env=env)
    assert out.returncode == 2
    assert "not configured" in out.stderr and "11434/v1" in out.stderr and "8000/v1" in out.stderr
    assert "Traceback" not in out.stderr
    scan = run_cli("scan", str(tmp_path), "--json", env=env)  # non-LLM tools keep working
    assert scan.returncode == 0, scan.stderr
