"""What each side of a case has: weights, config, tokenizer and training logs."""

from __future__ import annotations

from pathlib import Path

from companion.case.schemas import Side
from companion.errors import InputError

WEIGHT_SUFFIXES = (".safetensors", ".gguf")
INDEX_NAME = "model.safetensors.index.json"
TOKENIZER_NAMES = ("tokenizer.json", "vocab.txt")
# Log files found beside a model without being named (the usual names of the trainers).
LOG_NAMES = ("trainer_state.json", "trainer_log.jsonl")
LOG_SUFFIXES = (".log", ".csv", ".jsonl")
LOG_WORDS = ("loss", "train", "metrics")
MAX_LISTED = 4096


def _folder(path: Path) -> Path:
    """The model folder a path names: itself, or the folder of a file inside it."""
    return path if path.is_dir() else path.parent


def discover(path: Path, logs: list[Path]) -> Side:
    """Inventory one side: its weight files, config, tokenizer and logs (named or beside it)."""
    if not path.exists():
        raise InputError(
            f"{path} does not exist.",
            hint="pass a model folder (config.json, *.safetensors) or a file inside one.",
        )
    folder = _folder(path)
    names = sorted(p.name for p in _listing(folder))
    weights: list[str] = []
    if path.is_file() and path.suffix in WEIGHT_SUFFIXES:
        weights = [str(path)]
    elif INDEX_NAME in names:
        weights = [str(folder / INDEX_NAME)]
    else:
        weights = [str(folder / n) for n in names if n.endswith(WEIGHT_SUFFIXES)]
    config = folder / "config.json"
    tokenizer = next((folder / n for n in TOKENIZER_NAMES if n in names), None)
    found = [folder / n for n in names if is_log_name(n)]
    all_logs = [*logs, *(p for p in found if p not in logs)]
    for log in all_logs:
        if not log.exists():
            raise InputError(f"Log {log} does not exist.", hint="pass an existing training log.")
    return Side(
        path=str(path),
        weights=weights,
        config=str(config) if config.is_file() else None,
        tokenizer=None if tokenizer is None else str(tokenizer),
        logs=[str(p) for p in all_logs],
    )


def is_log_name(name: str) -> bool:
    """Whether a file beside a model is named like a training log."""
    lower = name.lower()
    if lower in LOG_NAMES:
        return True
    return lower.endswith(LOG_SUFFIXES) and any(w in lower for w in LOG_WORDS)


def _listing(folder: Path) -> list[Path]:
    """Regular files directly in a folder (bounded: a model folder is not a file system)."""
    try:
        out: list[Path] = []
        for entry in folder.iterdir():
            if len(out) >= MAX_LISTED:
                break
            if entry.is_file():
                out.append(entry)
        return out
    except OSError as exc:
        raise InputError(
            f"Cannot list {folder}: {exc.strerror or exc}.", hint="check the folder is readable."
        ) from None


def audit_target(side: Side) -> str | None:
    """What to hand the weight audit: the folder or single file holding the weights."""
    if not side.weights:
        return None
    if len(side.weights) == 1:
        return side.weights[0]
    return str(Path(side.weights[0]).parent)
