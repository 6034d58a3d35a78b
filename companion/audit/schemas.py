"""Input and output models of `audit.compare` (the JSON every front door sees)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_serializer, field_validator

from companion.audit.alignment import GROUPS, ROLES
from companion.manifest import Manifest
from companion.model import Model
from companion.tools import EXPERT, Facts, ToolResult, WholeWords

Verdict = Literal["derived", "independent", "inconclusive"]


class AuditInput(Model):
    """Arguments of `audit.compare`."""

    a: str = Field(description="Reference checkpoint A: a .safetensors file, index.json or folder.")
    b: str = Field(
        description="Checkpoint B, suspected of being derived from A; or BASE+ADAPTER (a PEFT "
        "LoRA folder merged onto BASE on the fly); or a LoRA adapter folder alone (does it "
        "belong to A?)."
    )
    baseline: Annotated[list[str], WholeWords()] = Field(
        default_factory=list,
        description="Third models C (up to 4): A's reference, and merge candidates (B fitted "
        "as a*A + sum of b_i*C_i per tensor names a merge and the C_i it took from).",
    )
    roles: list[str] = Field(
        default_factory=list,
        description="Roles or groups to compare (comma list), e.g. norm,attn,mlp; default all. "
        f"Groups: {', '.join(GROUPS)}; roles: {', '.join(ROLES)}.",
    )
    report: str | None = Field(default=None, description="Also write the markdown report here.")
    overwrite: bool = Field(
        default=False, description="Replace an existing output file (asked for on the CLI)."
    )
    sample_size: int = Field(
        json_schema_extra=EXPERT,
        default=16384,
        ge=256,
        le=1 << 22,
        description="Elements sampled per tensor.",
    )
    null_draws: int = Field(
        json_schema_extra=EXPERT, default=1000, ge=10, le=100_000, description="Shuffle-null draws."
    )
    seed: int = Field(
        json_schema_extra=EXPERT,
        default=0,
        ge=0,
        description="Seed for samples, nulls and projections.",
    )
    baselines: bool = Field(
        json_schema_extra=EXPERT,
        default=True,
        description="Compute baselines (shuffle null, cross-layer, random init).",
    )
    permutation_test: bool = Field(
        json_schema_extra=EXPERT,
        default=True,
        description="Run the permutation-robust matching test (MLP units, heads).",
    )
    match_layers: int = Field(
        json_schema_extra=EXPERT, default=4, ge=0, le=1024, description="Layers matched per test."
    )
    symmetry_tests: Literal["auto", "always"] = Field(
        json_schema_extra=EXPERT,
        default="auto",
        description="auto: skip the unit, head and hidden-alignment tests when every matrix "
        "already matches A's element-wise (they cannot change the verdict); always: run them.",
    )
    max_match_units: int = Field(
        json_schema_extra=EXPERT,
        default=512,
        ge=2,
        le=65536,
        description="Largest exact assignment; above: nearest.",
    )

    @field_validator("baseline", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        """Accept one path (older callers and manifests) as well as a list; None as none."""
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @field_serializer("baseline")
    def _dump_baseline(self, value: list[str]) -> str | list[str] | None:
        """None or one path as before (manifests of older runs still match); else the list."""
        return (value[0] if value else None) if len(value) <= 1 else list(value)

    @field_validator("roles", mode="before")
    @classmethod
    def _split_roles(cls, value: object) -> object:
        """Accept 'norm,attn' as well as ['norm', 'attn']."""
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list | tuple):
            return [r.strip() for i in items for r in str(i).split(",") if r.strip()]
        return value

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        """Refuse unknown role names with the list of known ones."""
        bad = [r for r in value if r not in GROUPS and r not in ROLES]
        if bad:
            raise ValueError(f"unknown roles {bad}; use {', '.join([*GROUPS, *ROLES])}")
        return value


class PairMetrics(Model):
    """Streamed metrics of one tensor pair (quantiles and Spearman on the sample)."""

    cosine: float | None = None
    pearson: float | None = None
    spearman: float | None = None
    rel_l2: float | None = None
    norm_ratio: float | None = None
    mean_a: float | None = None
    std_a: float | None = None
    mean_b: float | None = None
    std_b: float | None = None
    absdiff_p50: float | None = None
    absdiff_p99: float | None = None
    absdiff_max: float | None = None
    identical_frac: float | None = None
    sign_agree: float | None = None
    folded_pearson: float | None = None
    nonfinite_a: int = 0
    nonfinite_b: int = 0


class TensorBaselines(Model):
    """Baseline figures for one pair."""

    shuffle_pearson_mean: float | None = None
    shuffle_pearson_sd: float | None = None
    shuffle_cosine_mean: float | None = None
    cross_layer_pearson_mean: float | None = None
    cross_layer_pearson_sd: float | None = None
    within_a_pearson_mean: float | None = None
    random_init_cosine: float | None = None
    random_init_pearson: float | None = None
    third_cosine: float | None = None
    third_pearson: float | None = None


class TensorResult(Model):
    """One compared tensor pair with its metrics, baselines and significance."""

    name_a: str
    name_b: str
    role: str
    group: str
    layer: int | None = None
    layer_b: int | None = None
    expert: int | None = None
    shape: list[int]
    dtype_a: str
    dtype_b: str
    metrics: PairMetrics
    baselines: TensorBaselines
    z: float | None = Field(default=None, description="Pearson z against the shuffle null.")
    p: float | None = Field(default=None, description="Empirical p against the shuffle null.")
    z_cross: float | None = Field(default=None, description="Pearson z against cross-layer.")
    cosine_trap: bool = False
    notes: list[str] = Field(default_factory=list)


class UnitMatch(Model):
    """Observed matched similarity against its null, for one kind of unit."""

    kind: Literal["mlp_units", "heads", "heads_invariant"]
    units: int
    method: str
    observed: float
    null_mean: float
    null_sd: float
    z: float
    p: float
    draws: int
    moved: float = Field(description="Share of B units matched to a different index in A.")


class MatchSummary(UnitMatch):
    """Permutation-robust matching test of one layer."""

    layer: int
    layer_b: int
    elementwise: dict[str, float] | None = Field(
        default=None,
        description="heads_invariant: element-wise Pearson of q, k, v, o after the hidden and "
        "head alignment (low while the invariant matches: maps inside attention, 'rotated').",
    )


class RoleSummary(Model):
    """Metric summary of one role group with its baselines and its evidence."""

    role: str
    tensors: int
    cosine_median: float | None = None
    pearson_median: float | None = None
    spearman_median: float | None = None
    folded_pearson_median: float | None = None
    shuffle_pearson_mean: float | None = None
    shuffle_pearson_sd: float | None = None
    shuffle_cosine_mean: float | None = None
    cross_layer_pearson_mean: float | None = None
    within_a_pearson_mean: float | None = None
    random_init_cosine: float | None = None
    random_init_pearson: float | None = None
    third_pearson_median: float | None = None
    z_median: float | None = None
    significant_frac: float | None = None
    cosine_traps: int = 0
    permutation: list[MatchSummary] = Field(default_factory=list)
    permutation_z: float | None = Field(default=None, description="Stouffer z over layers.")
    related: bool = False
    evidence: list[str] = Field(default_factory=list)


class LayerSummary(Model):
    """Per layer: mean Pearson of its tensors against the cross-layer baseline."""

    layer: int
    layer_b: int
    tensors: int
    pearson_mean: float | None = None
    cross_layer_pearson_mean: float | None = None
    std_a_mean: float | None = None
    std_b_mean: float | None = None


class LayerPair(Model):
    """Which layer of A maps to which layer of B, and how well they agree."""

    a: int
    b: int
    score: float | None = None


class Reason(Model):
    """One reason behind the verdict: a figure and the baseline it beat (or did not)."""

    kind: str
    role: str | None = None
    strength: Literal["strong", "weak", "info"] = "info"
    statement: str
    figure: float | None = None
    baseline: float | None = None
    baseline_name: str | None = None
    z: float | None = None
    p: float | None = None


class Fingerprint(Model):
    """Per-layer std profile correlation (HonestAGI-style): weak evidence only."""

    pearson: float | None
    layers: int
    caveat: str = (
        "Weak evidence: std profiles follow depth-dependent init and training dynamics, so "
        "unrelated models can match (unrelated 7B models reach 0.91)."
    )


class Unmatched(Model):
    """A tensor that was not compared, and why."""

    name: str
    side: Literal["a", "b", "baseline"]
    reason: str


class HiddenEvidence(Model):
    """The recovered residual-stream permutation and its calibrated test."""

    source: str = Field(description="What the dims were matched on (embeddings, norms, ...).")
    dims: int
    one_to_one: int
    moved: int = Field(description="Dims at a different index in B.")
    observed: float
    null_mean: float
    null_sd: float
    z: float
    p: float
    draws: int


class DeltaStat(Model):
    """B - A for one aligned projection: relative size and the rank holding 90 % of its energy."""

    name: str
    layer: int
    rel_l2: float
    rank90: int
    full_rank: int


class AlignedEvidence(Model):
    """Comparison after undoing hidden, unit, head and scale symmetries."""

    hidden: HiddenEvidence | None = None
    layers: list[MatchSummary] = Field(default_factory=list)
    z: float | None = Field(default=None, description="Stouffer z over the layer tests.")
    p: float | None = None
    related: bool = False
    deltas: list[DeltaStat] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    stopped_early: str | None = Field(
        default=None, description="Why fewer layers or null draws were run (decisive evidence)."
    )


class Derivation(Model):
    """One way B appears to have been made from A, with the figures that show it."""

    kind: str
    figures: dict[str, float | int | str] = Field(default_factory=dict)
    confidence: Literal["high", "medium", "low"] = "medium"
    evasive: bool = False
    statement: str = ""


class CandidateFit(Model):
    """One merge candidate Cᵢ: its share βᵢ of B over the matrices, or why it was left out."""

    index: int = Field(description="1-based, in the order the baselines were given.")
    label: str
    status: Literal["contributes", "not_contributing", "redundant", "not_comparable"]
    tensors: int = Field(default=0, description="Matrices fitted with this candidate.")
    beta: float | None = Field(default=None, description="Median βᵢ over the matrices.")
    beta_iqr: float | None = None
    beta_t_median: float | None = Field(default=None, description="Median |t| of βᵢ.")
    share_t3: float | None = Field(default=None, description="Share of matrices with |t| >= 3.")
    reason: str = ""


class MergeFit(Model):
    """B ≈ α·A + Σ βᵢ·Cᵢ per tensor (least squares on the aligned samples), with every Cᵢ."""

    tensors: int = Field(description="Matrices fitted.")
    alpha: float | None = None
    alpha_iqr: float | None = None
    alpha_t_median: float | None = None
    residual_median: float | None = None
    residual_a_only_median: float | None = None
    candidates: list[CandidateFit] = Field(default_factory=list)
    named: bool = Field(default=False, description="Whether a `merge` derivation was named.")
    note: str = Field(default="", description="Why no merge was named, when none was.")


class AuditResult(ToolResult):
    """Result of `audit.compare`: verdict with reasons, summaries, per-tensor rows, manifest."""

    a: str
    b: str
    baseline: str | None = Field(default=None, description="The first baseline (reference).")
    baselines: list[str] = Field(default_factory=list, description="Every baseline, in order.")
    verdict: Verdict
    derivation: list[Derivation] = Field(default_factory=list)
    reasons: list[Reason]
    per_role: list[RoleSummary]
    per_layer: list[LayerSummary]
    layer_map: list[LayerPair]
    per_tensor: list[TensorResult]
    fingerprint: Fingerprint | None = None
    unmatched: list[Unmatched] = Field(default_factory=list)
    excluded: list[Unmatched] = Field(
        default_factory=list, description="Buffers and constant tensors left out (not weights)."
    )
    aligned: AlignedEvidence | None = None
    merge_fit: MergeFit | None = Field(
        default=None, description="The fit of B on A and the baselines (when any was given)."
    )
    mtp: list[str] = Field(default_factory=list, description="MTP tensors flagged, not matched.")
    bytes_read: int = 0
    seconds: float = 0.0
    report_path: str | None = None
    manifest: Manifest
    record_id: str | None = None

    def to_markdown(self) -> str:
        """The human report."""
        from companion.audit.render import render

        return render(self)

    def facts(self) -> Facts:
        """An audit: its verdict, reasons and per-tensor rows."""
        return Facts(
            table="audit", verdict=self.verdict, reasons=tuple(self.reasons), rows=self.per_tensor
        )
