"""Editor analysis of a config document (pure): problems with safe fixes, and key hovers."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from companion.architecture.catalog import catalog
from companion.architecture.families import FAMILIES
from companion.architecture.hovers import hover_text
from companion.architecture.jsonc import Member, Parsed, parse, to_python
from companion.architecture.keydocs import DEPRECATED
from companion.architecture.nearest import Neighbour, nearest
from companion.architecture.params import ParamCount, count_params
from companion.architecture.spec import ArchSpec, build_spec
from companion.architecture.tokenizer import tokenizer_size
from companion.errors import CompanionError

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


@dataclass
class Analysis:
    """Everything the editor shows for one version of a config document."""

    parsed: Parsed
    folder: Path | None
    spec: ArchSpec | None = None
    params: ParamCount | None = None
    neighbour: Neighbour | None = None
    members: dict[str, Member] = field(default_factory=dict)
    _problems: list[Problem] | None = None

    def problems(self) -> list[Problem]:
        """Syntax and semantic problems (computed once; may read a sibling tokenizer)."""
        if self._problems is None:
            self._problems = _problems(self)
        return self._problems

    def hover(self, offset: int) -> tuple[str, int, int] | None:
        """Markdown and key span for the member under `offset`."""
        chain = self.parsed.path_at(offset)
        if not chain:
            return None
        m = chain[-1] if len(chain) > 1 else chain[0]
        parent = chain[-2].key if len(chain) > 1 else None
        text = hover_text(m.key, to_python(m.value), parent, self)
        if text is None and len(chain) > 1:
            m = chain[0]
            text = hover_text(m.key, to_python(m.value), None, self)
        return (text, m.key_start, m.key_end) if text else None


def analyse(text: str, folder: Path | None) -> Analysis:
    """Parse and understand a config text; never raises."""
    parsed = parse(text)
    a = Analysis(parsed=parsed, folder=folder)
    root = parsed.root
    if root is None or root.kind != "object":
        return a
    a.members = {m.key: m for m in root.members}
    try:
        a.spec = build_spec(to_python(root))
    except CompanionError:
        return a
    a.params = count_params(a.spec)
    a.neighbour = nearest(a.spec, 1)[0]
    return a


_tok_cache: dict[Path, tuple[float, int, int | None]] = {}


def sibling_tokenizer_size(folder: Path | None) -> tuple[Path, int] | None:
    """Size of tokenizer.json beside the config (cached by mtime); None if absent/unreadable."""
    if folder is None:
        return None
    path = folder / "tokenizer.json"
    try:
        st = path.stat()
    except OSError:
        return None
    hit = _tok_cache.get(path)
    if hit is None or hit[0] != st.st_mtime or hit[1] != st.st_size:
        try:
            size: int | None = tokenizer_size(path)
        except CompanionError:
            size = None
        _tok_cache[path] = hit = (st.st_mtime, st.st_size, size)
    return None if hit[2] is None else (path, hit[2])


def _member_span(a: Analysis, key: str) -> tuple[int, int]:
    """The key span of a top-level member (or the document start)."""
    m = a.members.get(key)
    return (m.key_start, m.key_end) if m else (0, 1)


def _removal(a: Analysis, key: str) -> tuple[int, int] | None:
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


def _problems(a: Analysis) -> list[Problem]:
    """All diagnostics of an analysis."""
    out = [
        Problem(f"JSON syntax: {e.message}", e.start, e.end, "error", "json-syntax")
        for e in a.parsed.errors[:50]
    ]
    s = a.spec
    if s is None:
        if a.parsed.root is not None and a.parsed.root.kind != "object":
            r = a.parsed.root
            out.append(
                Problem(
                    "A model config must be a JSON object.", r.start, r.end, "error", "not-object"
                )
            )
        return out
    no_head_dim = s.attention != "mla" and "head_dim" not in a.members
    if s.hidden_size and s.num_heads and no_head_dim and s.hidden_size % s.num_heads:
        st, en = _member_span(a, "num_attention_heads")
        out.append(
            Problem(
                f"hidden_size {s.hidden_size} is not divisible by num_attention_heads "
                f"{s.num_heads}, and there is no head_dim: the head width is undefined.",
                st,
                en,
                "error",
                "head-dim",
            )
        )
    if s.num_heads and s.num_kv_heads and s.attention != "mla" and s.num_heads % s.num_kv_heads:
        st, en = _member_span(a, "num_key_value_heads")
        out.append(
            Problem(
                f"num_key_value_heads {s.num_kv_heads} does not divide num_attention_heads "
                f"{s.num_heads}: query heads cannot be grouped evenly.",
                st,
                en,
                "error",
                "kv-heads",
            )
        )
    tok = sibling_tokenizer_size(a.folder)
    if tok is not None and s.vocab_size is not None and tok[1] != s.vocab_size:
        st, en = _member_span(a, "vocab_size")
        if s.vocab_size < tok[1]:
            out.append(
                Problem(
                    f"vocab_size {s.vocab_size:,} is smaller than tokenizer.json beside it "
                    f"({tok[1]:,} ids): some tokens have no embedding row.",
                    st,
                    en,
                    "error",
                    "vocab-size",
                )
            )
        else:
            out.append(
                Problem(
                    f"vocab_size {s.vocab_size:,} differs from tokenizer.json beside it "
                    f"({tok[1]:,} ids): {s.vocab_size - tok[1]:,} padding rows (usually harmless "
                    "alignment).",
                    st,
                    en,
                    "information",
                    "vocab-size",
                )
            )
    mt = a.members.get("model_type")
    if mt is not None and mt.value is not None and not s.known_family:
        close = difflib.get_close_matches(str(s.model_type), _KNOWN_TYPES, n=1, cutoff=0.75)
        fix = None
        if close and mt.value.kind == "string":
            fix = Fix(
                f'Change model_type to "{close[0]}"', mt.value.start, mt.value.end, f'"{close[0]}"'
            )
        hint = f' Did you mean "{close[0]}"?' if close else ""
        out.append(
            Problem(
                f"Unknown model_type {s.model_type!r}: read generically, counts may be off.{hint}",
                mt.value.start,
                mt.value.end,
                "warning",
                "unknown-model-type",
                fix,
            )
        )
    for key, (repl, why) in DEPRECATED.items():
        m = a.members.get(key)
        if m is None:
            continue
        span = _removal(a, key) if repl is None else None
        fix = Fix(f"Remove deprecated key {key}", *span, "") if span else None
        msg = f"{key} is deprecated" + (f"; use {repl}" if repl else "") + f": {why}"
        out.append(Problem(msg, m.key_start, m.key_end, "hint", "deprecated-key", fix, True))
    for key, value in _coerced(a).items():
        m = a.members[key]
        if m.value is not None:
            new = "true" if value is True else "false" if value is False else repr(value)
            out.append(
                Problem(
                    f"{key} is written as a string; it should be the number/boolean {new}.",
                    m.value.start,
                    m.value.end,
                    "warning",
                    "wrong-type",
                    Fix(f"Write {key} as {new}", m.value.start, m.value.end, new),
                )
            )
    if s.missing and not a.parsed.errors:
        st, en = _member_span(a, "model_type")
        out.append(
            Problem(
                "Missing " + ", ".join(s.missing) + ": the parameter count is partial.",
                st,
                en,
                "information",
                "missing-fields",
            )
        )
    return out


def _coerced(a: Analysis) -> dict[str, object]:
    """Top-level fields that were strings but meant numbers/booleans."""
    from companion.architecture.reader import Reader

    root = a.parsed.root
    cfg = to_python(root)
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
