"""Compare two tokenizers (tokenizer.json or vocab.txt): shared strings, IDs, merges."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from companion import files
from companion.convert import parser
from companion.errors import CompanionError, InputError
from companion.model import Model

MAX_TOKENIZER_BYTES = 512 * 1024 * 1024


@dataclass
class Vocab:
    """A tokenizer's token strings with their IDs, and its BPE merges (if any)."""

    path: str
    kind: str
    tokens: dict[str, int]
    merges: set[str] = field(default_factory=set)
    added: int = 0

    @property
    def size(self) -> int:
        """Rows an embedding table needs: highest ID + 1."""
        return max(self.tokens.values(), default=-1) + 1


def _resolve(path: Path) -> Path:
    """Accept a tokenizer file or a folder holding tokenizer.json / vocab.txt."""
    if path.is_dir():
        for name in ("tokenizer.json", "vocab.txt"):
            if (path / name).is_file():
                return path / name
        raise InputError(
            f"{path} has no tokenizer.json or vocab.txt.", hint="pass a tokenizer file."
        )
    if not path.is_file():
        raise InputError(f"{path} does not exist.", hint="pass an existing tokenizer file.")
    size = path.stat().st_size
    if size > MAX_TOKENIZER_BYTES:
        raise InputError(
            f"{path} is {size:,} bytes, too large for a tokenizer.",
            hint="pass tokenizer.json or vocab.txt.",
        )
    return path


def _merge_key(m: Any) -> str | None:
    """A merge as one string, from either the "a b" or the ["a", "b"] format."""
    if isinstance(m, str):
        return m
    if isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m):
        return f"{m[0]} {m[1]}"
    return None


def _from_json(path: Path, data: Any) -> Vocab:
    """Read the HF tokenizers format (BPE / WordPiece / WordLevel dict vocab, Unigram list)."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise InputError(
            f"{path} is not a Hugging Face tokenizer.json (no 'model' object).",
            hint="pass tokenizer.json from a model folder, or a WordPiece vocab.txt.",
        )
    model = data["model"]
    vocab = model.get("vocab")
    tokens: dict[str, int] = {}
    if isinstance(vocab, dict):
        tokens = {k: v for k, v in vocab.items() if isinstance(v, int) and not isinstance(v, bool)}
    elif isinstance(vocab, list):  # Unigram: [[piece, score], ...], ID = position
        for i, item in enumerate(vocab):
            if isinstance(item, list) and item and isinstance(item[0], str):
                tokens.setdefault(item[0], i)
    else:
        raise InputError(
            f"{path}: model.vocab is missing or not a dict/list.",
            hint="pass a complete tokenizer.json.",
        )
    added = 0
    listed = data.get("added_tokens")
    for t in listed if isinstance(listed, list) else []:
        if (
            isinstance(t, dict)
            and isinstance(t.get("content"), str)
            and isinstance(t.get("id"), int)
        ):
            if t["content"] not in tokens:
                added += 1
            tokens[t["content"]] = t["id"]
    merges = model.get("merges") or []
    keys = (
        {k for m in merges if (k := _merge_key(m)) is not None}
        if isinstance(merges, list)
        else set()
    )
    kind = str(model.get("type") or ("Unigram" if isinstance(vocab, list) else "BPE"))
    return Vocab(str(path), kind, tokens, keys, added)


@parser("The tokenizer", "pass an intact tokenizer.json or vocab.txt.")
def load_vocab(path: Path) -> Vocab:
    """Load tokenizer.json, vocab.txt or a .gguf's tokenizer arrays; bad input is InputError."""
    if path.suffix == ".gguf" and path.is_file():  # the tokenizer arrays in its metadata
        from companion.architecture.gguf_config import gguf_vocab

        kind, ids, merges = gguf_vocab(path)
        return Vocab(str(path), kind, ids, merges)
    path = _resolve(path)
    raw = files.read_bytes(path, MAX_TOKENIZER_BYTES, "Tokenizer")
    if path.suffix == ".txt":
        try:
            lines = raw.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError(f"{path} is not UTF-8 text.", hint="pass a vocab.txt.") from None
        tokens: dict[str, int] = {}
        for i, line in enumerate(lines):
            tokens.setdefault(line.rstrip("\r"), i)
        return Vocab(str(path), "WordPiece (vocab.txt)", tokens)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InputError(
            f"{path} is not valid JSON: {str(exc)[:120]}.", hint="pass an intact tokenizer.json."
        ) from None
    return _from_json(path, data)


class TokenizerComparison(Model):
    """How two vocabularies relate."""

    a: str
    b: str
    kind_a: str
    kind_b: str
    size_a: int
    size_b: int
    tokens_a: int
    tokens_b: int
    shared: int
    jaccard: float = Field(description="Shared token strings / union of token strings.")
    same_id_fraction: float = Field(description="Of the shared strings, fraction with equal IDs.")
    dominant_shift: int = Field(description="Most common ID offset (B - A) among shared strings.")
    dominant_shift_fraction: float
    merges_a: int
    merges_b: int
    merges_jaccard: float | None = None
    relation: Literal["same", "extended", "overlapping", "unrelated"]
    hint: str
    examples_only_a: list[str] = Field(default_factory=list)
    examples_only_b: list[str] = Field(default_factory=list)


def compare_vocabs(a: Vocab, b: Vocab) -> TokenizerComparison:
    """Compare two vocabularies: overlap, ID agreement, shift and merges, with a hint."""
    keys_a, keys_b = a.tokens.keys(), b.tokens.keys()
    shared_keys = keys_a & keys_b
    union = len(keys_a | keys_b)
    shared = len(shared_keys)
    same_id = sum(a.tokens[k] == b.tokens[k] for k in shared_keys)
    shifts = Counter(b.tokens[k] - a.tokens[k] for k in shared_keys)
    shift, shift_n = shifts.most_common(1)[0] if shifts else (0, 0)
    jac = shared / union if union else 1.0
    same_frac = same_id / shared if shared else 0.0
    merges_j = None
    if a.merges or b.merges:
        mu = len(a.merges | b.merges)
        merges_j = len(a.merges & b.merges) / mu if mu else None
    smaller = min(len(keys_a), len(keys_b)) or 1
    if jac >= 0.999 and same_frac >= 0.999:
        relation, hint = "same", "Same vocabulary with the same IDs: the same tokenizer."
    elif shared / smaller >= 0.98 and (same_frac >= 0.98 or shift_n / max(shared, 1) >= 0.98):
        bigger = "B" if len(keys_b) > len(keys_a) else "A"
        relation = "extended"
        hint = (
            f"{bigger} extends the other: nearly every token of the smaller vocabulary is kept"
            + (" with the same ID." if same_frac >= 0.98 else f" shifted by {shift} IDs.")
        )
    elif jac < 0.3:
        relation = "unrelated"
        hint = "Few shared token strings: independently trained tokenizers."
    else:
        relation = "overlapping"
        hint = (
            "Many shared strings but different IDs: related corpora or a retrained tokenizer, "
            "not a copy."
        )
    return TokenizerComparison(
        a=a.path,
        b=b.path,
        kind_a=a.kind,
        kind_b=b.kind,
        size_a=a.size,
        size_b=b.size,
        tokens_a=len(keys_a),
        tokens_b=len(keys_b),
        shared=shared,
        jaccard=round(jac, 6),
        same_id_fraction=round(same_frac, 6),
        dominant_shift=shift,
        dominant_shift_fraction=round(shift_n / shared, 6) if shared else 0.0,
        merges_a=len(a.merges),
        merges_b=len(b.merges),
        merges_jaccard=None if merges_j is None else round(merges_j, 6),
        relation=relation,
        hint=hint,
        examples_only_a=sorted(keys_a - keys_b)[:8],
        examples_only_b=sorted(keys_b - keys_a)[:8],
    )


def tokenizer_size(path: Path) -> int:
    """Embedding rows a tokenizer needs (highest ID + 1)."""
    return load_vocab(path).size


_sibling_cache: dict[Path, tuple[float, int, int | None]] = {}


def sibling_tokenizer_size(folder: Path | None) -> tuple[Path, int] | None:
    """Size of tokenizer.json beside a config (cached by mtime); None if absent/unreadable."""
    if folder is None:
        return None
    path = folder / "tokenizer.json"
    try:
        st = path.stat()
    except OSError:
        return None
    hit = _sibling_cache.get(path)
    if hit is None or hit[0] != st.st_mtime or hit[1] != st.st_size:
        try:
            size: int | None = tokenizer_size(path)
        except CompanionError:
            size = None
        _sibling_cache[path] = hit = (st.st_mtime, st.st_size, size)
    return None if hit[2] is None else (path, hit[2])
