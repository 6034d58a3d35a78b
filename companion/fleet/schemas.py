"""Input and result schemas of `fleet.fingerprint`."""

from __future__ import annotations

from pydantic import Field

from companion.mdtext import inline_path, inline_prose
from companion.model import Model
from companion.tools import ToolResult


class FleetInput(Model):
    """Arguments of `fleet.fingerprint`."""

    source: str = Field(
        description="A folder to scan for checkpoints, or a text file listing one path a line."
    )
    ray_address: str | None = Field(
        default=None, description="A running Ray cluster; default: start a local one."
    )
    num_cpus: int | None = Field(default=None, ge=1, description="Local Ray CPUs (default: all).")
    max_retries: int = Field(default=3, ge=0, description="Retries of a task whose worker died.")
    resume: bool = Field(default=True, description="Skip checkpoints already fingerprinted.")


class FleetItem(Model):
    """What happened to one checkpoint."""

    path: str
    status: str = Field(description="ok | failed | skipped")
    error: str | None = None
    record_id: str | None = None
    seconds: float = 0.0


class FleetResult(ToolResult):
    """Every checkpoint of the run, with counts and the throughput."""

    items: list[FleetItem]
    ok: int
    failed: int
    skipped: int
    seconds: float
    bytes_read: int
    cpus: float

    def to_markdown(self) -> str:
        """Counts, rate and the failures."""
        rate = self.bytes_read / self.seconds / 1e9 if self.seconds > 0 else 0.0
        lines = [
            "# Fleet fingerprint",
            "",
            f"{self.ok} fingerprinted, {self.skipped} skipped (already stored), "
            f"{self.failed} failed, in {self.seconds:.1f} s on {self.cpus:g} CPUs "
            f"({rate:.3f} GB/s).",
        ]
        failures = [i for i in self.items if i.status == "failed"]
        if failures:
            lines += ["", "| failed checkpoint | error |", "|---|---|"]
            lines += [f"| {inline_path(i.path)} | {inline_prose(i.error)} |" for i in failures]
        return "\n".join(lines) + "\n"
