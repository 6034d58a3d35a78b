"""Nearest known architectures: rank the built-in catalog by diff distance."""

from __future__ import annotations

from companion.architecture.catalog import catalog
from companion.architecture.diff import diff_specs
from companion.architecture.spec import ArchSpec
from companion.model import Model


class Neighbour(Model):
    """A catalog model and how far it is from the spec."""

    name: str
    repo: str
    distance: float
    differences: list[str]
    published_total: str
    published_active: str | None = None
    source: str


def nearest(spec: ArchSpec, k: int = 5) -> list[Neighbour]:
    """The k closest catalog entries (distance 0 = same hyperparameters)."""
    scored = []
    for e in catalog():
        d = diff_specs(spec, e.spec(), "this", e.name)
        scored.append((d.distance, e, d))
    scored.sort(key=lambda t: (t[0], t[1].name))
    return [
        Neighbour(
            name=e.name,
            repo=e.repo,
            distance=dist,
            differences=[x.meaning for x in d.differences[:6]],
            published_total=e.published_total.text,
            published_active=e.published_active.text if e.published_active else None,
            source=e.source,
        )
        for dist, e, d in scored[: max(1, k)]
    ]
