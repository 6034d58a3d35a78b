"""Typed, forgiving reads of config fields: wrong types become notes, never exceptions."""

from __future__ import annotations

import math
from typing import Any

_MAX_INT = 2**53


class Reader:
    """Reads fields from a config dict, recording what was used and what looked wrong."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.used: set[str] = set()
        self.notes: list[str] = []
        self.coercions: dict[str, Any] = {}

    def raw(self, *keys: str) -> tuple[str | None, Any]:
        """The first present key among `keys` and its value."""
        for k in keys:
            if k in self.cfg:
                self.used.add(k)
                return k, self.cfg[k]
        return None, None

    def integer(
        self, *keys: str, default: int | None = None, minimum: int = 0, maximum: int = _MAX_INT
    ) -> int | None:
        """An integer field; numeric strings and integral floats are accepted with a note."""
        key, v = self.raw(*keys)
        if key is None or v is None:
            return default
        out: int | None = None
        if isinstance(v, bool):
            self.notes.append(f"{key} is a boolean ({v}); expected an integer, ignored.")
        elif isinstance(v, int):
            out = v
        elif isinstance(v, float) and math.isfinite(v) and v.is_integer():
            out = int(v)
        elif isinstance(v, str) and v.strip().lstrip("-").isdigit() and len(v) < 20:
            out = int(v.strip())
            self.notes.append(f"{key} is a string ({v!r}); read as the integer {out}.")
            self.coercions[key] = out
        else:
            self.notes.append(f"{key} has type {type(v).__name__}; expected an integer, ignored.")
        if out is not None and not (minimum <= out <= maximum):
            self.notes.append(f"{key} = {out} is out of range ({minimum} to {maximum:,}); ignored.")
            out = None
        return default if out is None else out

    def number(self, *keys: str, default: float | None = None) -> float | None:
        """A float field; numeric strings are accepted with a note."""
        key, v = self.raw(*keys)
        if key is None or v is None:
            return default
        if isinstance(v, bool):
            self.notes.append(f"{key} is a boolean; expected a number, ignored.")
            return default
        if isinstance(v, int | float):
            return float(v) if math.isfinite(v) else default
        if isinstance(v, str):
            try:
                out = float(v)
            except ValueError:
                out = math.nan
            if math.isfinite(out):
                self.notes.append(f"{key} is a string ({v!r}); read as {out}.")
                self.coercions[key] = out
                return out
        self.notes.append(f"{key} has type {type(v).__name__}; expected a number, ignored.")
        return default

    def flag(self, *keys: str, default: bool = False) -> bool:
        """A boolean field; "true"/"false" strings and 0/1 are accepted with a note."""
        key, v = self.raw(*keys)
        if key is None or v is None:
            return default
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false"):
            self.notes.append(f"{key} is a string ({v!r}); read as a boolean.")
            self.coercions[key] = v.lower() == "true"
            return v.lower() == "true"
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        self.notes.append(f"{key} has type {type(v).__name__}; expected a boolean, ignored.")
        return default

    def text(self, *keys: str) -> str | None:
        """A string field."""
        key, v = self.raw(*keys)
        if key is None or v is None:
            return None
        if isinstance(v, str):
            return v[:200]
        self.notes.append(f"{key} has type {type(v).__name__}; expected a string, ignored.")
        return None

    def array(self, *keys: str) -> list[Any] | None:
        """A list field."""
        key, v = self.raw(*keys)
        if key is None or v is None:
            return None
        if isinstance(v, list):
            return v
        self.notes.append(f"{key} has type {type(v).__name__}; expected a list, ignored.")
        return None

    def mapping(self, *keys: str) -> dict[str, Any] | None:
        """An object field."""
        key, v = self.raw(*keys)
        if key is None or v is None:
            return None
        if isinstance(v, dict):
            return v
        self.notes.append(f"{key} has type {type(v).__name__}; expected an object, ignored.")
        return None
