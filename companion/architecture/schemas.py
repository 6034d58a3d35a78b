"""Input and result schemas of the architecture tools (arch.*, tokenizer.compare)."""

from __future__ import annotations

from pydantic import Field

from companion.architecture.diff import ArchDiff
from companion.architecture.nearest import Neighbour
from companion.architecture.params import ParamCount
from companion.architecture.spec import ArchSpec
from companion.architecture.tokenizer import TokenizerComparison
from companion.manifest import Manifest
from companion.model import Model
from companion.tools import Facts, ToolResult

CONVENTIONS = (
    "total: every weight of the main model (embedding, output head once if tied, all experts, "
    "routers, norms, biases), MTP layers excluded and reported separately; active: what one "
    "token touches (attention, norms, router, top-k routed + shared experts, embedding, head). "
    "'excluding_input_embedding' drops the token-embedding table."
)


class ArchInput(Model):
    """A model config to read."""

    path: str = Field(
        description="config.json, a folder holding one, or catalog:<name> for a known model."
    )


class DiffInput(Model):
    """Two model configs to compare."""

    a: str = Field(description="First config.json (or folder, or catalog:<name>).")
    b: str = Field(description="Second config.json (or folder, or catalog:<name>).")


class NearestInput(Model):
    """A model config and how many neighbours to list."""

    path: str = Field(description="config.json or a folder holding one.")
    k: int = Field(default=5, ge=1, le=50, description="How many known architectures to list.")


class TokenizerInput(Model):
    """Two tokenizers to compare."""

    a: str = Field(description="First tokenizer.json or vocab.txt (or a folder holding one).")
    b: str = Field(description="Second tokenizer.json or vocab.txt (or a folder holding one).")


class DescribeResult(ToolResult):
    """The normalised spec, its parameter count and its nearest known architectures."""

    spec: ArchSpec
    params: ParamCount
    nearest: list[Neighbour]
    manifest: Manifest
    record_id: str | None = None

    def to_markdown(self) -> str:
        """Render for people."""
        from companion.architecture.render import describe_markdown

        return describe_markdown(self)

    def facts(self) -> Facts:
        """The spec of the one model described."""
        return Facts(specs=(self.spec,))


class ParamsResult(ParamCount, ToolResult):
    """A parameter count with its conventions and, for a known model, the published figures."""

    path: str
    conventions: str = CONVENTIONS
    published: str | None = None

    def to_markdown(self) -> str:
        """Render for people."""
        from companion.architecture.render import params_markdown

        return params_markdown(self)


class DiffResult(ArchDiff, ToolResult):
    """A semantic diff of two configs."""

    def to_markdown(self) -> str:
        """Render for people."""
        from companion.architecture.render import diff_markdown

        return diff_markdown(self)


class NearestResult(ToolResult):
    """Known architectures ranked by distance."""

    path: str
    summary: str
    neighbours: list[Neighbour]

    def to_markdown(self) -> str:
        """Render for people."""
        from companion.architecture.render import nearest_markdown

        return nearest_markdown(self)


class TokenizerResult(TokenizerComparison, ToolResult):
    """A tokenizer comparison with its manifest."""

    manifest: Manifest
    record_id: str | None = None

    def to_markdown(self) -> str:
        """Render for people."""
        from companion.architecture.render import tokenizer_markdown

        return tokenizer_markdown(self)

    def facts(self) -> Facts:
        """A tokenizer comparison: its relation is the verdict."""
        return Facts(table="tokenizer", verdict=self.relation)
