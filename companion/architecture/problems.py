"""Diagnostics of a config document: a table of named rules, each yielding its problems.

`DOCUMENT_RULES` read the text; `SPEC_RULES` read the normalised spec and run only when
there is one. Every rule is named after the code of the problems it reports.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from companion.architecture.archspec import ArchSpec
from companion.architecture.catalog import catalog
from companion.architecture.document import ConfigDocument
from companion.architecture.families import FAMILIES
from companion.architecture.jsonc import to_python
from companion.architecture.keydocs import DEPRECATED
from companion.architecture.reader import Reader
from companion.architecture.tokenizer import sibling_tokenizer_size

Severity = Literal["error", "warning", "information", "hint"]
_KNOWN_TYPES = sorted({*FAMILIES, "gemma3_text", *(e.config["model_type"] for e in catalog())})


@dataclass
class Fix:
    """A safe text edit that resolves a problem."""

    title: str
    start: int
    end: int
    new_text: str


@dataclass
class Problem:
    """A diagnostic in character offsets."""

    message: str
    start: int
    end: int
    severity: Severity
    code: str
    fix: Fix | None = None
    deprecated: bool = False


DocumentRule = Callable[[ConfigDocument], list[Problem]]
SpecRule = Callable[[ConfigDocument, ArchSpec], list[Problem]]


def _member_span(a: ConfigDocument, key: str) -> tuple[int, int]:
    """The key span of a top-level member (or the document start)."""
    m = a.members.get(key)
    return (m.key_start, m.key_end) if m else (0, 1)


def _removal(a: ConfigDocument, key: str) -> tuple[int, int] | None:
    """Span that deletes a whole top-level member and one adjacent comma."""
    root = a.parsed.root
    if root is None:
        return None
    ms = root.members
    i = next((j for j, m in enumerate(ms) if m.key == key), None)
    if i is None or ms[i].value is None:
        return None
    if i + 1 < len(ms):
        return ms[i].key_start, ms[i + 1].key_start
    if i > 0 and ms[i - 1].value is not None:
        prev_end = ms[i - 1].value.end  # type: ignore[union-attr]
        return prev_end, ms[i].value.end  # type: ignore[union-attr]
    return ms[i].key_start, ms[i].value.end  # type: ignore[union-attr]


def json_syntax(a: ConfigDocument) -> list[Problem]:
    """The first 50 JSON syntax errors."""
    return [
        Problem(f"JSON syntax: {e.message}", e.start, e.end, "error", "json-syntax")
        for e in a.parsed.errors[:50]
    ]


def not_object(a: ConfigDocument) -> list[Problem]:
    """A document whose root is not an object cannot be a model config."""
    r = a.parsed.root
    if a.spec is not None or r is None or r.kind == "object":
        return []
    return [Problem("A model config must be a JSON object.", r.start, r.end, "error", "not-object")]


def head_dim(a: ConfigDocument, s: ArchSpec) -> list[Problem]:
    """Without head_dim, hidden_size must divide evenly into the attention heads."""
    no_head_dim = s.attention != "mla" and "head_dim" not in a.members
    if not (s.hidden_size and s.num_heads and no_head_dim and s.hidden_size % s.num_heads):
        return []
    st, en = _member_span(a, "num_attention_heads")
    msg = (
        f"hidden_size {s.hidden_size} is not divisible by num_attention_heads "
        f"{s.num_heads}, and there is no head_dim: the head width is undefined."
    )
    return [Problem(msg, st, en, "error", "head-dim")]


def kv_heads(a: ConfigDocument, s: ArchSpec) -> list[Problem]:
    """The KV heads must divide the query heads (outside MLA)."""
    if not (s.num_heads and s.num_kv_heads and s.attention != "mla"):
        return []
    if not s.num_heads % s.num_kv_heads:
        return []
    st, en = _member_span(a, "num_key_value_heads")
    msg = (
        f"num_key_value_heads {s.num_kv_heads} does not divide num_attention_heads "
        f"{s.num_heads}: query heads cannot be grouped evenly."
    )
    return [Problem(msg, st, en, "error", "kv-heads")]


def vocab_size(a: ConfigDocument, s: ArchSpec) -> list[Problem]:
    """vocab_size against the tokenizer.json beside the config."""
    tok = sibling_tokenizer_size(a.folder)
    if tok is None or s.vocab_size is None or tok[1] == s.vocab_size:
        return []
    st, en = _member_span(a, "vocab_size")
    if s.vocab_size < tok[1]:
        msg = (
            f"vocab_size {s.vocab_size:,} is smaller than tokenizer.json beside it "
            f"({tok[1]:,} ids): some tokens have no embedding row."
        )
        return [Problem(msg, st, en, "error", "vocab-size")]
    msg = (
        f"vocab_size {s.vocab_size:,} differs from tokenizer.json beside it "
        f"({tok[1]:,} ids): {s.vocab_size - tok[1]:,} padding rows (usually harmless "
        "alignment)."
    )
    return [Problem(msg, st, en, "information", "vocab-size")]


def unknown_model_type(a: ConfigDocument, s: ArchSpec) -> list[Problem]:
    """An unknown model_type, with a fix to the closest known one."""
    mt = a.members.get("model_type")
    if mt is None or mt.value is None or s.known_family:
        return []
    close = difflib.get_close_matches(str(s.model_type), _KNOWN_TYPES, n=1, cutoff=0.75)
    fix = None
    if close and mt.value.kind == "string":
        title = f'Change model_type to "{close[0]}"'
        fix = Fix(title, mt.value.start, mt.value.end, f'"{close[0]}"')
    hint = f' Did you mean "{close[0]}"?' if close else ""
    msg = f"Unknown model_type {s.model_type!r}: read generically, counts may be off.{hint}"
    return [Problem(msg, mt.value.start, mt.value.end, "warning", "unknown-model-type", fix)]


def deprecated_key(a: ConfigDocument, s: ArchSpec) -> list[Problem]:
    """Deprecated keys, with a removal fix when nothing replaces them."""
    out = []
    for key, (repl, why) in DEPRECATED.items():
        m = a.members.get(key)
        if m is None:
            continue
        span = _removal(a, key) if repl is None else None
        fix = Fix(f"Remove deprecated key {key}", *span, "") if span else None
        msg = f"{key} is deprecated" + (f"; use {repl}" if repl else "") + f": {why}"
        out.append(Problem(msg, m.key_start, m.key_end, "hint", "deprecated-key", fix, True))
    return out


def wrong_type(a: ConfigDocument, s: ArchSpec) -> list[Problem]:
    """Numbers and booleans written as strings, with a fix that unquotes them."""
    out = []
    for key, value in _coerced(a).items():
        v = a.members[key].value
        if v is None:
            continue
        new = "true" if value is True else "false" if value is False else repr(value)
        msg = f"{key} is written as a string; it should be the number/boolean {new}."
        fix = Fix(f"Write {key} as {new}", v.start, v.end, new)
        out.append(Problem(msg, v.start, v.end, "warning", "wrong-type", fix))
    return out


def missing_fields(a: ConfigDocument, s: ArchSpec) -> list[Problem]:
    """Essential fields absent from a syntactically valid config."""
    if not s.missing or a.parsed.errors:
        return []
    st, en = _member_span(a, "model_type")
    msg = "Missing " + ", ".join(s.missing) + ": the parameter count is partial."
    return [Problem(msg, st, en, "information", "missing-fields")]


DOCUMENT_RULES: tuple[DocumentRule, ...] = (json_syntax, not_object)
SPEC_RULES: tuple[SpecRule, ...] = (
    head_dim,
    kv_heads,
    vocab_size,
    unknown_model_type,
    deprecated_key,
    wrong_type,
    missing_fields,
)


def find_problems(a: ConfigDocument) -> list[Problem]:
    """All diagnostics of a document, rule by rule in table order."""
    out = [p for rule in DOCUMENT_RULES for p in rule(a)]
    if a.spec is not None:
        out += [p for rule in SPEC_RULES for p in rule(a, a.spec)]
    return out


def _coerced(a: ConfigDocument) -> dict[str, object]:
    """Top-level fields that were strings but meant numbers/booleans."""
    cfg = to_python(a.parsed.root)
    r = Reader(cfg if isinstance(cfg, dict) else {})
    for key, m in a.members.items():
        if m.value is not None and m.value.kind == "string":
            v = m.value.value
            if v.strip().lstrip("-").isdigit():
                r.integer(key)
            elif v.lower() in ("true", "false") and key.startswith(("tie_", "use_", "attention_b")):
                r.flag(key)
    return {
        k: v
        for k, v in r.coercions.items()
        if k not in ("model_type",) and not k.endswith("_token_id") and k in _NUMERIC_KEYS
    }


_NUMERIC_KEYS = {
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "n_embd",
    "n_layer",
    "n_head",
    "n_positions",
    "num_local_experts",
    "num_experts",
    "n_routed_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "n_shared_experts",
    "first_k_dense_replace",
    "kv_lora_rank",
    "q_lora_rank",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
    "sliding_window",
    "num_nextn_predict_layers",
    "tie_word_embeddings",
    "attention_bias",
    "use_qk_norm",
    "shared_expert_intermediate_size",
    "experts_per_token",
    "type_vocab_size",
}
