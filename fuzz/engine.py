"""Run one fuzz target under a time budget: Hypothesis first, then a fast byte mutator.

Hypothesis explores structure (shrinking a crash to a small input); the mutator supplies the
volume (a seeded random loop without Hypothesis's per-case overhead). Only `CompanionError`
may come out of a target; anything else is a crash, recorded with its input.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from companion.errors import CompanionError

Target = Callable[[bytes], object]
TOKENS = [
    b"nan",
    b"NaN",
    b"inf",
    b"Infinity",
    b"-Infinity",
    b"\r",
    b"\x00",
    b"\n",
    b"|",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b'"',
    b"\\",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"9" * 400,
    b"9" * 5000,
    b"1e999",
    b"-0",
    b"[" * 3000,
    b"lm loss:",
    b"'loss': ",
    b'"loss": ',
    b"step",
    b"//",
    b"/*",
    b'"num_hidden_layers": 100000000',
    b'"vocab_size": -1',
    b"true",
    b"null",
    b"\t",
]


@dataclass
class Report:
    """What one target's campaign found."""

    name: str
    cases: int = 0
    seconds: float = 0.0
    crashes: list[str] = field(default_factory=list)
    slowest: float = 0.0
    slowest_input: bytes = b""

    @property
    def rate(self) -> float:
        """Cases per second."""
        return self.cases / self.seconds if self.seconds else 0.0


def mutate(rng: random.Random, seed: bytes) -> bytes:
    """A seed cut short, with bytes flipped, inserted, deleted, duplicated or spliced."""
    if rng.random() < 0.05:
        return rng.randbytes(rng.randrange(0, 300))
    data = bytearray(seed[: rng.randrange(0, len(seed) + 1)] if rng.random() < 0.3 else seed)
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(0, len(data) + 1)
        op = rng.randrange(5)
        if op == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[at:at] = rng.choice(TOKENS)
        elif op == 2:
            del data[at : at + rng.randrange(1, 64)]
        elif op == 3:
            data[at:at] = rng.randbytes(rng.randrange(1, 16))
        else:
            j = rng.randrange(0, len(data) + 1)
            data[at:at] = data[j : j + rng.randrange(1, 128)]
    return bytes(data)


class Runner:
    """Feeds inputs to one target, timing each and recording crashes and the slowest."""

    def __init__(self, name: str, target: Target, out: Path) -> None:
        self.report = Report(name)
        self.target = target
        self.out = out

    def one(self, data: bytes) -> None:
        """Run one case."""
        start = time.perf_counter()
        try:
            self.target(data)
        except CompanionError:
            pass
        except Exception:
            self._crash(data)
        took = time.perf_counter() - start
        self.report.cases += 1
        if took > self.report.slowest:
            self.report.slowest, self.report.slowest_input = took, data

    def _crash(self, data: bytes) -> None:
        """Keep the input and the traceback of a crash (at most 20 per target)."""
        r = self.report
        if len(r.crashes) < 20:
            path = self.out / f"crash-{r.name}-{len(r.crashes)}.bin"
            path.write_bytes(data)
            r.crashes.append(f"{path}: {traceback.format_exc().strip().splitlines()[-1]}")
        else:
            r.crashes.append("...")

    def hypothesis(self, seed: bytes, budget: float) -> None:
        """Hypothesis over spliced seeds, in seeded rounds of 200 until the budget is spent."""
        stop = time.monotonic() + budget
        rounds = 0
        while time.monotonic() < stop:
            self._round(seed, rounds)
            rounds += 1

    def _round(self, seed: bytes, number: int) -> None:
        """One Hypothesis round of 200 examples."""

        @hypothesis_seed(number)
        @settings(
            max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(st.binary(max_size=64), st.integers(0, len(seed)), st.integers(0, len(seed)))
        def case(noise: bytes, cut: int, at: int) -> None:
            self.one(seed[:at] + noise + seed[at:cut] if at <= cut else seed[:cut] + noise)

        case()

    def mutations(self, seeds: list[bytes], budget: float, rng: random.Random) -> None:
        """The fast mutation loop until the budget is spent."""
        stop = time.monotonic() + budget
        while time.monotonic() < stop:
            for _ in range(64):
                self.one(mutate(rng, rng.choice(seeds)))


def campaign(name: str, target: Target, seeds: list[bytes], budget: float, out: Path) -> Report:
    """Fuzz one target for `budget` seconds (a fifth with Hypothesis, the rest mutations)."""
    runner = Runner(name, target, out)
    start = time.monotonic()
    runner.hypothesis(max(seeds, key=len), budget / 5)
    runner.mutations(seeds, budget - (time.monotonic() - start), random.Random(name))
    runner.report.seconds = time.monotonic() - start
    return runner.report
