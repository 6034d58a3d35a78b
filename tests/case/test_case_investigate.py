"""`case.investigate`: the combined verdict on generated pairs, its rules, records and verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from companion.case.rules import RULES, claim_means, decide
from companion.case.schemas import CaseResult, Evidence
from companion.errors import InputError
from companion.store.schemas import QueryResult
from companion.tools import ToolContext


def investigate(ctx: ToolContext, **args: object) -> CaseResult:
    """Run the tool through the registry and check its type."""
    result = ctx.run("case.investigate", args)
    assert isinstance(result, CaseResult)
    return result


def test_independent_pair_with_scratch_log_supports_the_claim(
    family: dict[str, Path], ctx: ToolContext
) -> None:
    r = investigate(
        ctx,
        a=str(family["base"]),
        b=str(family["independent"]),
        logs_b=[str(family["scratch_log"])],
        claimed="trained from scratch",
    )
    assert r.verdict == "independent" and r.claim_verdict == "supports"
    assert r.rule.name == "weights-and-log-independent"
    sources = {e.source: e for e in r.chain}
    assert sources["weights"].points == "independent" and "shuffle" in sources["weights"].shows
    assert sources["log B"].baseline.startswith("ln V = 5.55")
    traps = {t.name: t for t in r.traps}
    assert traps["cosine trap"].status == "avoided"
    assert traps["a config match taken as proof"].status == "avoided"
    assert "Verdict: independent" in r.to_markdown()


def test_fresh_head_fine_tune_weights_win_over_the_log(
    family: dict[str, Path], ctx: ToolContext
) -> None:
    r = investigate(
        ctx,
        a=str(family["base"]),
        b=str(family["finetune"]),
        logs_b=[str(family["scratch_log"])],
        claimed="trained from scratch",
    )
    assert r.verdict == "derived" and r.claim_verdict == "contradicts"
    assert r.conflicts and "the weights win" in r.conflicts[0]
    assert {t.name: t.status for t in r.traps}["fresh-head fine-tune"] == "avoided"


def test_case_and_sub_results_are_recorded_and_verify(
    family: dict[str, Path], ctx: ToolContext
) -> None:
    r = ctx.run(
        "case.investigate",
        {
            "a": str(family["base"]),
            "b": str(family["finetune"]),
            "logs_b": [str(family["finetune_log"])],
        },
    )
    assert isinstance(r, CaseResult) and r.record_id
    subs = r.sub_records()
    assert len(subs) == 2  # the audit and B's log
    listed = ctx.run("audit.query", {"limit": 50})
    assert isinstance(listed, QueryResult)
    ids = {x.id for x in listed.records}
    assert {r.record_id, *subs} <= ids
    verified = ctx.run("store.verify", {"target": r.record_id})
    assert getattr(verified, "status", None) == "reproduced"


def test_no_weights_leaves_the_fresh_head_trap_open(
    family: dict[str, Path], ctx: ToolContext, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d, src in ((a, family["base"]), (b, family["independent"])):
        d.mkdir()
        (d / "config.json").write_bytes((src / "config.json").read_bytes())
    r = investigate(ctx, a=str(a), b=str(b), logs_b=[str(family["scratch_log"])])
    assert r.verdict == "inconclusive" and r.rule.name == "log-scratch-alone"
    assert {t.name: t.status for t in r.traps}["fresh-head fine-tune"] == "open"
    assert any("weights of both" in w for w in r.would_change)


def test_missing_side_and_unreadable_claim_are_clear_errors(
    family: dict[str, Path], ctx: ToolContext, tmp_path: Path
) -> None:
    with pytest.raises(InputError) as err:
        investigate(ctx, a=str(family["base"]), b=str(tmp_path / "nope"))
    assert err.value.hint and "model folder" in err.value.hint
    with pytest.raises(InputError) as err:
        investigate(ctx, a=str(family["base"]), b=str(family["base"]), claimed="maybe")
    assert err.value.hint and "trained from scratch" in err.value.hint


def _link(source: str, verdict: str, weight: str, points: str) -> Evidence:
    """One chain link (plain data, as the engines' results produce)."""
    return Evidence(
        source=source,
        tool="t",
        verdict=verdict,
        shows="",
        baseline="",
        weight=weight,
        points=points,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("links", "rule"),
    [
        ([_link("weights", "derived", "decisive", "derived")], "weights-derived"),
        (
            [
                _link("weights", "derived", "decisive", "derived"),
                _link("log B", "from_scratch", "strong", "independent"),
            ],
            "weights-derived",
        ),
        (
            [
                _link("weights", "independent", "weak", "independent"),
                _link("architecture", "differs", "moderate", "independent"),
            ],
            "weights-independent-shapes-differ",
        ),
        ([_link("weights", "independent", "weak", "independent")], "weak-weights-only"),
        (
            [
                _link("log B", "from_scratch", "strong", "independent"),
                _link("architecture", "differs", "moderate", "independent"),
            ],
            "log-scratch-shapes-differ",
        ),
        ([_link("log B", "warm_start", "moderate", "derived")], "log-warm-alone"),
        ([_link("architecture", "same", "none", "neither")], "nothing-decisive"),
    ],
)
def test_rule_table(links: list[Evidence], rule: str) -> None:
    assert decide(links).name == rule
    assert rule in {r.name for r in RULES}


def test_claims_in_words() -> None:
    assert claim_means("trained from scratch") == "independent"
    assert claim_means("fine-tuned from GLM-4.5-Air") == "derived"
    assert claim_means("not derived from A") == "independent"
