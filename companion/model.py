"""The base of every companion schema."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A pydantic model whose validator is built on first use, not at import: front doors
    import every engine's schemas and one call uses a few of them (a CLI audit started
    0.1 s sooner)."""

    model_config = ConfigDict(defer_build=True)
