"""Progress on stderr: rich progress bars with rate and ETA, only on a terminal unless forced."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator

Report = Callable[[str, "float | None"], None]
_BYTES = re.compile(r"([\d.]+)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\b")
_UNIT = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
_UNIT |= {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def bytes_in(message: str) -> float | None:
    """The first byte count a progress message names ('1.2 GB of 4 GB' -> 1.2e9), if any."""
    m = _BYTES.search(message)
    return None if m is None else float(m.group(1)) * _UNIT[m.group(2)]


def _silent(message: str, fraction: float | None) -> None:
    """Draw nothing."""


@contextlib.contextmanager
def console_progress(force: bool = False) -> Iterator[Report]:
    """A progress callback drawing one bar on stderr (never stdout, which carries results)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    err = Console(stderr=True, force_terminal=True if force else None)
    if not err.is_terminal:
        yield _silent
        return
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}", markup=False),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=err, transient=True) as bars:
        task = bars.add_task("starting", total=1.0, rate="")

        def report(message: str, fraction: float | None) -> None:
            done = bytes_in(message)
            rate = (
                ""
                if done is None
                else f"{done / max(time.monotonic() - started, 1e-3) / 1e6:.1f} MB/s"
            )
            bars.update(task, description=message[:60], completed=fraction, rate=rate)

        yield report
