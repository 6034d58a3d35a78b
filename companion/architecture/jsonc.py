"""A tolerant JSON/JSONC parser that keeps positions (for hover and diagnostics).

It accepts comments and trailing commas, records syntax errors instead of raising, and keeps
whatever it could parse, so the editor keeps working while the user types invalid JSON.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

MAX_DEPTH = 64
MAX_NUMBER_CHARS = 400  # a config number longer than this is hostile (int-string limit: 4300)

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<lc>//[^\n]*)
  | (?P<bc>/\*.*?\*/)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<num>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<punct>[{}\[\]:,])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ustr>"[^"\n]*)
  | (?P<bad>/\*|.)
    """,
    re.S | re.X,
)
_WORDS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "NaN": float("nan"),
    "Infinity": float("inf"),
}


@dataclass
class Node:
    """A parsed value with its character span; objects hold members, arrays hold nodes."""

    kind: str  # object | array | string | number | bool | null
    start: int
    end: int
    value: Any = None
    members: list[Member] = field(default_factory=list)
    items: list[Node] = field(default_factory=list)


@dataclass
class Member:
    """One `"key": value` pair of an object (value is None when it is missing)."""

    key: str
    key_start: int
    key_end: int
    value: Node | None


@dataclass
class SyntaxProblem:
    """A syntax error with its character span."""

    message: str
    start: int
    end: int


@dataclass
class Parsed:
    """The result of a tolerant parse: a (possibly partial) tree plus the problems found."""

    text: str
    root: Node | None
    errors: list[SyntaxProblem]
    _line_starts: list[int] | None = None

    def line_starts(self) -> list[int]:
        """Offsets where each line begins (computed once)."""
        if self._line_starts is None:
            starts = [0]
            starts += [m.end() for m in re.finditer("\n", self.text)]
            self._line_starts = starts
        return self._line_starts

    def position(self, offset: int) -> tuple[int, int]:
        """(line, UTF-16 character) of a character offset, as LSP counts them."""
        starts = self.line_starts()
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(starts, offset) - 1
        segment = self.text[starts[line] : offset]
        if segment.isascii():
            return line, len(segment)
        return line, len(segment.encode("utf-16-le")) // 2

    def offset(self, line: int, character: int) -> int:
        """Character offset of an LSP (line, UTF-16 character) position, clamped."""
        starts = self.line_starts()
        if line < 0:
            return 0
        if line >= len(starts):
            return len(self.text)
        begin = starts[line]
        end = starts[line + 1] - 1 if line + 1 < len(starts) else len(self.text)
        segment = self.text[begin:end]
        if segment.isascii():
            return begin + min(character, len(segment))
        units = 0
        for i, ch in enumerate(segment):
            if units >= character:
                return begin + i
            units += 2 if ord(ch) > 0xFFFF else 1
        return end

    def path_at(self, offset: int) -> list[Member]:
        """The chain of members (outermost first) whose key or value spans `offset`."""
        chain: list[Member] = []
        node = self.root
        while node is not None:
            nxt: Node | None = None
            if node.kind == "object":
                for m in node.members:
                    end = m.value.end if m.value is not None else m.key_end
                    if m.key_start <= offset <= end:
                        chain.append(m)
                        nxt = m.value
                        break
            elif node.kind == "array":
                nxt = next((it for it in node.items if it.start <= offset <= it.end), None)
            node = nxt
        return chain


def to_python(node: Node | None) -> Any:
    """The plain Python value of a node (missing member values become None)."""
    if node is None:
        return None
    if node.kind in ("object", "array") and node.value is not None:
        return node.value  # a large container kept whole by the fast path
    if node.kind == "object":
        return {m.key: to_python(m.value) for m in node.members}
    if node.kind == "array":
        return [to_python(i) for i in node.items]
    return node.value


class _Parser:
    """Recursive descent over a token list, recording errors and recovering."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.errors: list[SyntaxProblem] = []
        self.toks: list[tuple[str, int, int]] = []
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup or "bad"
            if kind in ("ws", "lc", "bc"):
                continue
            if kind == "ustr":
                self.error("Unterminated string.", m.start(), m.end())
                kind = "str"
            elif kind == "bad":
                msg = "Unterminated comment." if m.group() == "/*" else f"Unexpected {m.group()!r}."
                self.error(msg, m.start(), m.end())
                continue
            self.toks.append((kind, m.start(), m.end()))
        self.i = 0

    def error(self, message: str, start: int, end: int) -> None:
        """Record a problem (bounded, so hostile input cannot grow the list without end)."""
        if len(self.errors) < 200:
            self.errors.append(SyntaxProblem(message, start, max(end, start + 1)))

    def peek(self) -> tuple[str, int, int] | None:
        """The next token, if any."""
        return self.toks[self.i] if self.i < len(self.toks) else None

    def is_punct(self, tok: tuple[str, int, int] | None, ch: str) -> bool:
        """Whether a token is the punctuation `ch`."""
        return tok is not None and tok[0] == "punct" and self.text[tok[1]] == ch

    def string_value(self, start: int, end: int) -> str:
        """Decode a string token (the unterminated kind is read up to the line end)."""
        raw = self.text[start:end]
        if not raw.endswith('"') or len(raw) == 1:
            return raw[1:]
        if "\\" not in raw:
            return raw[1:-1]
        try:
            return str(json.loads(raw))
        except ValueError:
            self.error("Invalid escape in string.", start, end)
            return raw[1:-1]

    def value(self, depth: int) -> Node | None:
        """Parse one value; None (with an error) if there is none here."""
        tok = self.peek()
        if tok is None:
            self.error(
                "Expected a value, found the end of the text.", len(self.text), len(self.text)
            )
            return None
        kind, start, end = tok
        if kind == "punct":
            ch = self.text[start]
            if ch in "{[":
                if depth >= MAX_DEPTH:
                    self.error(f"Nested deeper than {MAX_DEPTH} levels.", start, end)
                    self.skip_nested()
                    return Node("null", start, self.toks[self.i - 1][2])
                self.i += 1
                return self.obj(start, depth) if ch == "{" else self.arr(start, depth)
            self.error(f"Expected a value, found {ch!r}.", start, end)
            return None
        self.i += 1
        if kind == "str":
            return Node("string", start, end, self.string_value(start, end))
        if kind == "num":
            return Node("number", start, end, self.number(start, end))
        word = self.text[start:end]
        if word in _WORDS:
            v = _WORDS[word]
            return Node(
                "bool" if isinstance(v, bool) else "null" if v is None else "number", start, end, v
            )
        self.error(f"Unknown word {word!r} (expected true, false or null).", start, end)
        return Node("null", start, end, None)

    def number(self, start: int, end: int) -> int | float | None:
        """A number token's value; one too long for Python's int conversion is an error."""
        raw = self.text[start:end]
        if len(raw) > MAX_NUMBER_CHARS:
            self.error(f"A number of {len(raw)} characters is beyond any config value.", start, end)
            return None
        return float(raw) if any(c in raw for c in ".eE") else int(raw)

    def skip_nested(self) -> None:
        """Skip a too-deep container without recursing."""
        level = 0
        while (tok := self.peek()) is not None:
            self.i += 1
            if tok[0] == "punct":
                ch = self.text[tok[1]]
                level += ch in "{["
                level -= ch in "}]"
                if level <= 0:
                    return

    def obj(self, start: int, depth: int) -> Node:
        """Parse object members after `{`."""
        node = Node("object", start, start + 1)
        while True:
            tok = self.peek()
            if tok is None:
                self.error("Unterminated object: missing '}'.", start, start + 1)
                node.end = len(self.text)
                return node
            kind, s, e = tok
            if self.is_punct(tok, "}"):
                self.i += 1
                node.end = e
                return node
            if self.is_punct(tok, ","):
                self.error("Unexpected ','.", s, e)
                self.i += 1
                continue
            if kind != "str":
                if kind == "punct" and self.text[s] in "]":
                    self.error("Expected '}' to close the object.", s, e)
                    node.end = s
                    return node
                self.error("Expected a quoted key.", s, e)
                self.i += 1
                continue
            self.i += 1
            member = Member(self.string_value(s, e), s, e, None)
            node.members.append(member)
            if self.is_punct(self.peek(), ":"):
                self.i += 1
            else:
                self.error(f"Expected ':' after key {member.key!r}.", s, e)
            nxt = self.peek()
            if nxt is not None and nxt[0] == "punct" and self.text[nxt[1]] in ",}":
                self.error(f"Missing value for key {member.key!r}.", s, e)
            else:
                member.value = self.value(depth + 1)
            node.end = member.value.end if member.value is not None else e
            nxt = self.peek()
            if self.is_punct(nxt, ","):
                self.i += 1
            elif nxt is not None and not self.is_punct(nxt, "}"):
                self.error("Expected ',' or '}'.", nxt[1], nxt[2])
                if nxt[0] == "punct" and self.text[nxt[1]] in ":]":
                    self.i += 1

    def arr(self, start: int, depth: int) -> Node:
        """Parse array items after `[`."""
        node = Node("array", start, start + 1)
        while True:
            tok = self.peek()
            if tok is None:
                self.error("Unterminated array: missing ']'.", start, start + 1)
                node.end = len(self.text)
                return node
            if self.is_punct(tok, "]"):
                self.i += 1
                node.end = tok[2]
                return node
            if self.is_punct(tok, "}"):
                self.error("Expected ']' to close the array.", tok[1], tok[2])
                node.end = tok[1]
                return node
            if self.is_punct(tok, ",") or self.is_punct(tok, ":"):
                self.error(f"Unexpected {self.text[tok[1]]!r}.", tok[1], tok[2])
                self.i += 1
                continue
            item = self.value(depth + 1)
            if item is not None:
                node.items.append(item)
                node.end = item.end
            nxt = self.peek()
            if self.is_punct(nxt, ","):
                self.i += 1
            elif nxt is not None and not self.is_punct(nxt, "]"):
                self.error("Expected ',' or ']'.", nxt[1], nxt[2])


_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")
_EXPAND_BELOW = 16384  # containers smaller than this get positions for their members


def _kind(v: Any) -> str:
    """Node kind of a decoded Python value."""
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    return "bool" if isinstance(v, bool) else "null" if v is None else "number"


def _fast_value(text: str, i: int, depth: int) -> tuple[Node, int]:
    """Strict JSON at C speed: big containers are kept whole, small ones get member spans."""
    value, end = _DECODER.raw_decode(text, i)
    kind = _kind(value)
    if kind not in ("object", "array") or (depth > 0 and end - i >= _EXPAND_BELOW):
        return Node(kind, i, end, value), end
    node = Node(kind, i, end)
    j = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
    close = "}" if kind == "object" else "]"
    if text[j] == close:
        return node, end
    while True:
        if kind == "object":
            key_start = j
            key, kend = scanstring(text, j + 1)
            j = _WS.match(text, kend).end()  # type: ignore[union-attr]
            j = _WS.match(text, j + 1).end()  # type: ignore[union-attr]  # past ':'
            child, j = _fast_value(text, j, depth + 1)
            node.members.append(Member(key, key_start, kend, child))
        else:
            child, j = _fast_value(text, j, depth + 1)
            node.items.append(child)
        j = _WS.match(text, j).end()  # type: ignore[union-attr]
        if text[j] == close:
            return node, end
        j = _WS.match(text, j + 1).end()  # type: ignore[union-attr]  # past ','


def _fast(text: str) -> Parsed | None:
    """Parse strict JSON quickly; None when the text needs the tolerant parser."""
    try:
        start = _WS.match(text).end()  # type: ignore[union-attr]
        root, end = _fast_value(text, start, 0)
    except (ValueError, IndexError, RecursionError):  # also Python's int-string digit limit
        return None
    if _WS.match(text, end).end() != len(text):  # type: ignore[union-attr]
        return None
    return Parsed(text=text, root=root, errors=[])


def parse(text: str) -> Parsed:
    """Parse JSON or JSONC tolerantly; never raises for any input text."""
    fast = _fast(text)
    if fast is not None:
        return fast
    p = _Parser(text)
    root = p.value(0) if p.toks else None
    if root is None and not p.toks:
        p.error("The document is empty.", 0, 0)
    tail = p.peek()
    if tail is not None:
        p.error("Unexpected text after the top-level value.", tail[1], tail[2])
    return Parsed(text=text, root=root, errors=p.errors)
