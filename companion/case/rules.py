"""The combination: a table of small named rules over the chain; the first that fires decides.

Weights outrank logs: a first loss at ln V shows only that the output layer started random
(a fine-tune with a fresh head starts there too), while element-wise agreement far above
the shuffle null cannot arise by independent training. A log outranks an architecture or a
tokenizer, which independent models often share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from companion.case.schemas import ClaimVerdict, Evidence, Rule, Verdict
from companion.errors import InputError


@dataclass(frozen=True)
class Signals:
    """The chain reduced to what the rules read: each source's direction and weight."""

    weights: str | None  # derived | independent | inconclusive | None (no weights)
    weights_weak: bool
    log_b: str | None  # from_scratch | warm_start | inconclusive | None (no log of B)
    shapes_differ: bool
    tokenizer: str | None

    @classmethod
    def of(cls, chain: list[Evidence]) -> Signals:
        """Read the signals off the chain."""
        by = {e.source: e for e in chain}
        w, log, arch, tok = (by.get(k) for k in ("weights", "log B", "architecture", "tokenizer"))
        return cls(
            weights=None if w is None else w.verdict,
            weights_weak=w is not None and w.weight == "weak",
            log_b=None if log is None else log.verdict,
            shapes_differ=arch is not None and arch.points == "independent",
            tokenizer=None if tok is None else tok.verdict,
        )


@dataclass(frozen=True)
class CombinationRule:
    """One row of the table: a name, when it fires, what it concludes and why."""

    name: str
    when: Callable[[Signals], bool]
    verdict: Verdict
    because: str


RULES: tuple[CombinationRule, ...] = (
    CombinationRule(
        "weights-derived",
        lambda s: s.weights == "derived",
        "derived",
        "B's weights agree with A's element-wise far above the shuffle null; independent "
        "training does not reproduce that, whatever a log says.",
    ),
    CombinationRule(
        "weights-and-log-independent",
        lambda s: s.weights == "independent" and s.log_b == "from_scratch",
        "independent",
        "B's log starts at ln V (a random start) and its weights sit inside the nulls: two "
        "independent signals agree.",
    ),
    CombinationRule(
        "weights-independent-shapes-differ",
        lambda s: s.weights == "independent" and (not s.weights_weak or s.shapes_differ),
        "independent",
        "B's weights sit inside the nulls of A's and nothing else points to A.",
    ),
    CombinationRule(
        "log-scratch-shapes-differ",
        lambda s: s.log_b == "from_scratch" and s.weights != "derived" and s.shapes_differ,
        "independent",
        "B's log starts at ln V and its tensor shapes differ from A's: no unchanged copy, "
        "and a random start.",
    ),
    CombinationRule(
        "weak-weights-only",
        lambda s: s.weights == "independent",
        "inconclusive",
        "Only a weak weight signal (norm gains) speaks against derivation; nothing confirms it.",
    ),
    CombinationRule(
        "log-scratch-alone",
        lambda s: s.log_b == "from_scratch",
        "inconclusive",
        "B's log starts at ln V, but without weights a fine-tune with a fresh head is not "
        "excluded.",
    ),
    CombinationRule(
        "log-warm-alone",
        lambda s: s.log_b == "warm_start",
        "inconclusive",
        "B's log starts from a trained model; without weights the log cannot say which.",
    ),
    CombinationRule(
        "nothing-decisive",
        lambda s: True,
        "inconclusive",
        "No piece of evidence decides the question.",
    ),
)


def decide(chain: list[Evidence]) -> Rule:
    """The first rule of the table that fires on this chain."""
    signals = Signals.of(chain)
    rule = next(r for r in RULES if r.when(signals))
    return Rule(name=rule.name, verdict=rule.verdict, because=rule.because)


def conflicts(chain: list[Evidence]) -> list[str]:
    """Where the evidence disagrees, and which side wins and why."""
    s = Signals.of(chain)
    out = []
    if s.weights == "derived" and s.log_b == "from_scratch":
        out.append(
            "The log of B starts at ln V while its weights match A's: the weights win. A first "
            "loss at ln V shows only that the output layer started random, which is what a "
            "fine-tune with a fresh head (new vocabulary or re-initialised lm_head) looks like."
        )
    if s.weights == "independent" and s.log_b == "warm_start":
        out.append(
            "The log of B starts warm while its weights are not A's: the weights win about A. "
            "B was warm-started from some other trained model (or the log is a resumed segment)."
        )
    if s.weights == "derived" and s.shapes_differ:
        out.append(
            "Tensor shapes differ yet matched tensors agree: a derivative that changed its "
            "shape (pruned, extended vocabulary, upcycled). Matching tensors outweigh the config."
        )
    return out


_INDEPENDENT_WORDS = ("scratch", "independent", "not derived", "own", "original")
_DERIVED_WORDS = ("derived", "fine-tun", "finetun", "based on", "distill", "copy", "continued")


def claim_means(claim: str) -> Verdict:
    """What a claim in words asserts: independence or derivation."""
    text = claim.lower()
    if any(w in text for w in _INDEPENDENT_WORDS):
        return "independent"
    if any(w in text for w in _DERIVED_WORDS):
        return "derived"
    raise InputError(
        f"Cannot tell what the claim {claim!r} asserts.",
        hint="phrase it as 'trained from scratch' or 'derived from A' (or 'fine-tuned from A').",
    )


def judge_claim(claim: Verdict, verdict: Verdict) -> ClaimVerdict:
    """Whether the combined verdict supports the claim, contradicts it or cannot tell."""
    if verdict == "inconclusive":
        return "cannot tell"
    return "supports" if claim == verdict else "contradicts"
