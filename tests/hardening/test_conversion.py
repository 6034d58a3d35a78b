"""Class 2: hostile content reaches the user as the project's own error, never a traceback."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from companion.architecture.jsonc import parse
from companion.cli.main import EXIT_USER_ERROR, main
from companion.evidence.locate import scan_document

Case = Callable[[Path], list[str]]


def deep_index(d: Path) -> list[str]:
    """A sharded index nested past the recursion limit."""
    (d / "ck").mkdir()
    deep = "[" * 100_000 + "]" * 100_000
    (d / "ck" / "model.safetensors.index.json").write_text('{"weight_map": ' + deep + "}")
    return ["audit", str(d / "ck"), str(d / "ck")]


def deep_config(d: Path) -> list[str]:
    """A config nested past the recursion limit, with a comment (the JSONC path)."""
    (d / "config.json").write_text("// x\n" + '{"a": ' * 50_000 + "1" + "}" * 50_000)
    return ["arch", "describe", str(d / "config.json")]


def wrong_type_tokenizer(d: Path) -> list[str]:
    """A tokenizer whose fields have the wrong JSON types."""
    tok = d / "tokenizer.json"
    tok.write_text(
        json.dumps({"model": {"vocab": {"a": 0, "b": 1}, "merges": 3}, "added_tokens": 5})
    )
    return ["tokenizer", "compare", str(tok), str(tok)]


def huge_loss(d: Path) -> list[str]:
    """A trainer_state.json whose loss is an integer of hundreds of digits."""
    state = '{"log_history": [{"step": 1, "loss": ' + "9" * 320 + '}, {"step": 2, "loss": 1}]}'
    (d / "trainer_state.json").write_text(state)
    return ["evidence", str(d / "trainer_state.json"), "--vocab-size", "1000"]


def digit_limit(d: Path) -> list[str]:
    """A JSONC config with a number past Python's int-string digit limit."""
    (d / "config.json").write_text(
        '// c\n{"model_type": "llama", "hidden_size": ' + "1" * 5000 + "}"
    )
    return ["arch", "describe", str(d / "config.json")]


def long_path(d: Path) -> list[str]:
    """A path longer than the system allows (ENAMETOOLONG)."""
    return ["arch", "describe", str(d / ("a" * 5000))]


@pytest.mark.parametrize(
    "case", [deep_index, deep_config, wrong_type_tokenizer, huge_loss, digit_limit, long_path]
)
def test_cli_gives_a_clean_error(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*case(tmp_path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, EXIT_USER_ERROR), err
    if code:
        assert "Next step:" in err


@pytest.mark.parametrize(
    "text",
    [
        '{"log_history": [{"step": 1, "loss": 2.',
        '{"log_history": [{"step": 1, "loss": 1e',
        '{"log_history": [{"step": Infinity, "loss": -',
        '{"log_history": [{"step": 1, "loss": ' + "9" * 5000,
    ],
)
def test_half_typed_trainer_state_never_raises(text: str, tmp_path: Path) -> None:
    scan = scan_document(text, tmp_path / "trainer_state.json")
    assert scan.is_log


def test_jsonc_parse_never_raises_on_long_numbers() -> None:
    parsed = parse('/* c */ {"n": ' + "7" * 5000 + "}")
    assert parsed.errors and "beyond any config value" in parsed.errors[0].message


@pytest.mark.parametrize("field", ["current_steps", "loss", "lr"])
def test_jsonl_huge_integers_never_raise(field: str, tmp_path: Path) -> None:
    from companion.errors import CompanionError
    from companion.evidence.tabular import parse_jsonl

    rows = [{"current_steps": i + 1, "loss": 5.0 - i * 0.1, "lr": 1e-4} for i in range(5)]
    lines = [json.dumps(r) for r in rows]
    lines[1] = lines[1].replace(f'"{field}": ', f'"{field}": {"9" * 400}, "x": ', 1)
    path = tmp_path / "trainer_log.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with contextlib.suppress(CompanionError):
        parse_jsonl(path)
