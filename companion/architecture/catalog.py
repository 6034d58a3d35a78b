"""The built-in catalog of known public architectures (data in companion/data/arch_catalog.json)."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any, Literal

from companion.architecture.params import ParamCount, count_params
from companion.architecture.spec import ArchSpec, build_spec
from companion.errors import InputError
from companion.model import Model

_SCALE = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


class Published(Model):
    """A published parameter figure as written by its publisher (e.g. "3.3B")."""

    text: str
    value: float
    unit: float  # value of one unit in the last written digit (rounding resolution)

    @classmethod
    def parse(cls, text: str) -> Published:
        """Parse "46.7B" into value and resolution."""
        m = re.fullmatch(r"([0-9]+(?:\.([0-9]+))?)([KMBT])", text.strip())
        if m is None:
            raise ValueError(f"bad published figure {text!r}")
        scale = _SCALE[m.group(3)]
        decimals = len(m.group(2) or "")
        return cls(text=text, value=float(m.group(1)) * scale, unit=scale / 10**decimals)

    def agrees(self, computed: float, rel: float = 0.005) -> bool:
        """Within `rel` of the figure, or inside its rounding interval as written."""
        if abs(computed - self.value) <= rel * self.value:
            return True
        return self.value - self.unit / 2 <= computed < self.value + self.unit


class CatalogEntry(Model):
    """A known model: its config facts, published counts and where they come from."""

    name: str
    repo: str
    source: str
    published_total: Published
    published_active: Published | None = None
    active_convention: Literal["incl", "excl", "excl_both", "dense"] = "dense"
    config: dict[str, Any]

    def spec(self) -> ArchSpec:
        """The normalised spec of this entry."""
        return _spec(self.name)

    def params(self) -> ParamCount:
        """Our parameter count of this entry."""
        return count_params(self.spec())

    def computed_active(self) -> int:
        """Our active count in the publisher's convention."""
        p = self.params()
        if self.active_convention == "excl_both":
            return p.active_excluding_input_embedding - p.breakdown.output_head
        return p.active_excluding_input_embedding if self.active_convention == "excl" else p.active


@functools.cache
def catalog() -> tuple[CatalogEntry, ...]:
    """Load the catalog once."""
    raw = json.loads(
        resources.files("companion").joinpath("data/arch_catalog.json").read_text("utf-8")
    )
    out = []
    for m in raw["models"]:
        m = dict(m)
        m["published_total"] = Published.parse(m["published_total"])
        if "published_active" in m:
            m["published_active"] = Published.parse(m["published_active"])
        out.append(CatalogEntry.model_validate(m))
    return tuple(out)


@functools.cache
def _spec(name: str) -> ArchSpec:
    """Cached spec of a catalog entry."""
    entry = next(e for e in catalog() if e.name == name)
    return build_spec(entry.config, source=f"catalog:{entry.name}")


def find(name: str) -> CatalogEntry:
    """Look an entry up by name or repo (case-insensitive)."""
    key = name.removeprefix("catalog:").strip().lower()
    for e in catalog():
        if key in (e.name.lower(), e.repo.lower(), e.repo.split("/")[-1].lower()):
            return e
    raise InputError(
        f"No known architecture named {name!r}.",
        hint="use one of: " + ", ".join(e.name for e in catalog()) + ".",
    )
