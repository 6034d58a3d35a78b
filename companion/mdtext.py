"""Strings from user files made safe to interpolate into Markdown (inline text, cells, code).

Config values, GGUF metadata, tensor names, log fields and paths are written by whoever made
the file. Put bare into Markdown, a value can open a heading, break a table row, or embed a
remote image that the editor fetches when it shows a hover. These helpers keep such a value
one inert run of text: control characters are shown as escapes, the characters that start
Markdown or HTML structure are backslash-escaped, and long values are clipped.
"""

from __future__ import annotations

import re

LIMIT = 200
"""Characters of a value kept before the ellipsis (a name, not a payload)."""
PATH_LIMIT = 1024
"""Characters of a path kept (a deep folder is still a legitimate path)."""
PROSE_LIMIT = 4000
"""Characters of an engine's sentence kept (more than any it writes; bounds a payload)."""

# Shown as an escape so a value stays on its line (a newline would end a table row or start a
# heading; U+2028/U+2029 break lines in some renderers; bidi controls reorder what people read).
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Always escaped: code spans, emphasis, links/images, HTML and autolinks, table cells,
# strikethrough and ~~~ fences, and the backslash itself (so an escape cannot be undone).
_ALWAYS = re.compile(r"([\\`*\[\]<>|~])")
# A run of `_` opens or closes emphasis only at a word edge; inside a word
# (tie_word_embeddings, Qwen__Qwen3) it is literal and stays as it is.
_UNDERSCORES = re.compile("_+")
# At the start of a line these open a block: a heading, a list item, a setext underline or
# thematic break, an ordered item ("1. "). Numbers such as -0.5 or 1.5, or an option such as
# --vocab-size, open nothing.
_LEADING = re.compile(r"^(\s*)(#|[-+=](?=\s|$)|[-_=](?=[-_=\s]*$)|\d{1,9}(?=[.)](?:\s|$)))")


def visible(text: str) -> str:
    """`text` with line breaks, tabs and other control characters written as escapes."""
    return _INVISIBLE.sub(_escape_char, text)


def _escape_char(m: re.Match[str]) -> str:
    """One control character as a visible escape (\\n, \\t, \\x00, \\u2028)."""
    ch = m.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def clip(text: str, limit: int = LIMIT) -> str:
    """`text` cut to `limit` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def inline(text: object, limit: int = LIMIT) -> str:
    """A value as inert inline Markdown text, also safe as a table cell."""
    s = visible(clip(str(text), limit))
    s = _ALWAYS.sub(r"\\\1", s)
    s = _UNDERSCORES.sub(_escape_underscores, s)
    return _LEADING.sub(_escape_leading, s)


def inline_path(text: object) -> str:
    """A path as inert inline text (kept up to PATH_LIMIT characters)."""
    return inline(text, PATH_LIMIT)


def inline_prose(text: object) -> str:
    """An engine's sentence that may quote a file's values, as inert inline text."""
    return inline(text, PROSE_LIMIT)


def _escape_underscores(m: re.Match[str]) -> str:
    """Escape a run of underscores unless a letter or digit stands on both sides of it."""
    text, start, end = m.string, m.start(), m.end()
    inside = start > 0 and end < len(text) and text[start - 1].isalnum() and text[end].isalnum()
    return m.group(0) if inside else "\\_" * (end - start)


def _escape_leading(m: re.Match[str]) -> str:
    """Escape the block marker at the start of a value (`# x`, `- x`, `1. x`)."""
    space, mark = m.group(1), m.group(2)
    if mark[0].isdigit():
        return f"{space}{mark}\\"  # "1." -> "1\." : the escape goes on the delimiter
    return f"{space}\\{mark}"


def code(text: object, limit: int = LIMIT, cell: bool = False) -> str:
    """A value as one code span: the fence outruns any backtick run inside; no line breaks.

    With `cell`, `|` is escaped too: a GFM table splits cells on `|` even inside a code span
    (and shows `\\|` there as `|`); outside a table the escape would show, so it is opt-in.
    """
    s = visible(clip(str(text), limit))
    if cell:
        s = s.replace("|", "\\|")
    longest = max((len(run) for run in re.findall("`+", s)), default=0)
    fence = "`" * (longest + 1)
    # A leading or trailing backtick would merge with the fence; a space on each side is
    # stripped again by the renderer (CommonMark 6.1), as is a pair around a spaced value.
    pad = " " if s[:1] in ("`", " ") or s[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{s}{pad}{fence}" if s else "` `"
