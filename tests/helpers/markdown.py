"""Reading rendered Markdown the way an editor does (markdown-it, CommonMark + GFM tables)."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token

# What a hostile value must never become: a picture (fetched when shown), a link, raw HTML.
ACTIVE = {"image", "link_open", "html_inline", "html_block"}

HOSTILE = (
    "llama |\n# Verdict: independent\r\n![x](https://evil.example/t.png)\u2028"
    "<img src=https://evil.example/i.png> [click](https://evil.example/) `tick` **bold**"
)
"""A value from a file that tries a heading, a row break, an image, HTML, a link and code."""

_MD = MarkdownIt("commonmark").enable("table")


def tokens(md: str) -> list[Token]:
    """Every token, inline children included."""
    out: list[Token] = []
    for t in _MD.parse(md):
        out.append(t)
        out.extend(t.children or [])
    return out


def active(md: str) -> list[str]:
    """The images, links and HTML the rendering holds (empty for inert text)."""
    return [f"{t.type}: {t.content or t.attrs}" for t in tokens(md) if t.type in ACTIVE]


def headings(md: str) -> list[str]:
    """The text of every heading, in order."""
    toks = _MD.parse(md)
    return [text(toks[i + 1]) for i, t in enumerate(toks) if t.type == "heading_open"]


def table_rows(md: str) -> list[list[str]]:
    """Every table row (header rows included) as the rendered text of its cells."""
    rows: list[list[str]] = []
    in_row = False
    for t in _MD.parse(md):
        if t.type in ("tr_open", "tr_close"):
            in_row = t.type == "tr_open"
            rows += [[]] if in_row else []
        elif t.type == "inline" and in_row:
            rows[-1].append(text(t))
    return rows


def text(t: Token) -> str:
    """The text a person sees in an inline token (escapes resolved, code spans unquoted)."""
    kinds = ("text", "text_special", "code_inline")
    return "".join(c.content for c in t.children or [] if c.type in kinds)


def rendered(value: str) -> str:
    """What a person sees for `value` once its control characters are shown as escapes."""
    return value.replace("\r", "\\r").replace("\n", "\\n").replace("\u2028", "\\u2028")
