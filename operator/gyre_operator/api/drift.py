"""DriftMonitor: scheduled drift checks on a served model's traffic, and retraining."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from gyre_operator.api.common import (
    INT32_MAX,
    INT64_MAX,
    Duration,
    GyreModel,
    LocalObjectReference,
    ResourceRequirements,
    ResourceStatus,
    Timestamp,
)
from gyre_operator.api.resource import (
    AGE_COLUMN,
    PHASE_COLUMN,
    CelRule,
    GyreResource,
    KindInfo,
    PrinterColumn,
    cel_rules,
)
from gyre_operator.api.training import DatasetReference, Gates, Trainer

SCHEDULE_CHOICE = "set exactly one of schedule and interval"
WINDOW_CHOICE = "set exactly one of requests and duration"
MAX_RETRAIN_RECORDS = 20
MAX_CHECK_RECORDS = 20
MAX_FEATURE_RESULTS = 200


class Correction(StrEnum):
    """Multiple-testing correction of per-feature p-values."""

    BONFERRONI = "bonferroni"
    FDR = "fdr"
    NONE = "none"


class PSI(GyreModel):
    """Population Stability Index over quantile bins of the reference."""

    enabled: bool = Field(default=True, description="Use this method.")
    bins: int = Field(default=10, ge=2, le=100, description="Quantile bins of the reference.")
    threshold: float = Field(default=0.2, gt=0.0, description="Drifted at PSI >= threshold.")


class KolmogorovSmirnov(GyreModel):
    """Two-sample Kolmogorov-Smirnov test."""

    enabled: bool = Field(default=True, description="Use this method.")
    p_value: float = Field(default=0.05, gt=0.0, lt=1.0, description="Significance level.")
    correction: Correction = Field(
        default=Correction.BONFERRONI, description="Correction over the numeric features."
    )


class ChiSquared(GyreModel):
    """Chi-squared test of category frequencies."""

    enabled: bool = Field(default=True, description="Use this method.")
    p_value: float = Field(default=0.05, gt=0.0, lt=1.0, description="Significance level.")


class JensenShannon(GyreModel):
    """Jensen-Shannon distance between category frequencies (base 2, 0..1)."""

    enabled: bool = Field(default=True, description="Use this method.")
    threshold: float = Field(
        default=0.1, gt=0.0, le=1.0, description="Drifted at distance >= threshold."
    )


class NumericMethods(GyreModel):
    """Drift methods for numeric features; a feature drifts when any enabled method says so."""

    psi: PSI = Field(default_factory=PSI, description="Population Stability Index.")
    ks: KolmogorovSmirnov = Field(
        default_factory=KolmogorovSmirnov, description="Kolmogorov-Smirnov test."
    )


class CategoricalMethods(GyreModel):
    """Drift methods for categorical features; a feature drifts when any enabled method says so."""

    chi_squared: ChiSquared = Field(default_factory=ChiSquared, description="Chi-squared test.")
    jensen_shannon: JensenShannon = Field(
        default_factory=JensenShannon, description="Jensen-Shannon distance."
    )


class Methods(GyreModel):
    """Drift methods and thresholds per feature type."""

    numeric: NumericMethods = Field(default_factory=NumericMethods, description="Numeric.")
    categorical: CategoricalMethods = Field(
        default_factory=CategoricalMethods, description="Categorical."
    )


class Window(GyreModel):
    """Which logged requests a check looks at."""

    model_config = cel_rules(CelRule("has(self.requests) != has(self.duration)", WINDOW_CHOICE))

    requests: int | None = Field(
        default=None, ge=1, le=1_000_000, description="The last N logged requests."
    )
    duration: Duration | None = Field(
        default=None, description="Requests logged within this time before the check."
    )

    @model_validator(mode="after")
    def _one_window(self) -> Window:
        if (self.requests is None) == (self.duration is None):
            raise ValueError(WINDOW_CHOICE)
        return self


class Reference(GyreModel):
    """What current traffic is compared with."""

    dataset_ref: DatasetReference | None = Field(
        default=None,
        description="Compare with this Dataset's profile; when absent, the profile of the "
        "dataset version the served model was trained on (found by lineage).",
    )


class Policy(GyreModel):
    """When a check calls the data drifted."""

    drifted_feature_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="The data has drifted when at least this share of features drifted.",
    )


class TrainingRunTemplate(GyreModel):
    """Overrides for the TrainingRuns a monitor creates."""

    trainer: Trainer | None = Field(
        default=None,
        description="When absent, the trainer of the TrainingRun that made the served model.",
    )
    resources: ResourceRequirements | None = Field(default=None, description="Compute resources.")
    gates: Gates | None = Field(
        default=None, description="When absent, the gates of the run that made the served model."
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, le=INT32_MAX, description="Deadline of each run."
    )


class Retrain(GyreModel):
    """Creating a TrainingRun when drift is found."""

    enabled: bool = Field(default=False, description="Create TrainingRuns on drift.")
    dataset_ref: DatasetReference | None = Field(
        default=None,
        description="The fresh data to train on; when absent, the Dataset the served model was "
        "trained on, at its current version.",
    )
    template: TrainingRunTemplate | None = Field(
        default=None, description="Overrides for the created TrainingRuns."
    )
    cooldown: Duration = Field(
        default="6h", description="Minimum time between two retraining runs."
    )
    max_runs_per_day: int = Field(
        default=3, ge=1, le=100, description="At most this many runs in any 24 hours."
    )


class DriftMonitorSpec(GyreModel):
    """The desired state of a DriftMonitor."""

    model_config = cel_rules(CelRule("has(self.schedule) != has(self.interval)", SCHEDULE_CHOICE))

    inference_service_ref: LocalObjectReference = Field(
        description="The InferenceService whose traffic is checked."
    )
    schedule: str | None = Field(
        default=None,
        min_length=9,
        max_length=256,
        description="Cron schedule of checks (five fields, UTC), such as '0 * * * *'.",
    )
    interval: Duration | None = Field(default=None, description="Run a check this often.")
    window: Window = Field(
        default_factory=lambda: Window(requests=1000), description="Which requests to check."
    )
    reference: Reference = Field(default_factory=Reference, description="What to compare with.")
    features: list[str] | None = Field(
        default=None, description="Features to check; when absent, every feature of the model."
    )
    methods: Methods = Field(default_factory=Methods, description="Methods and thresholds.")
    min_samples: int = Field(
        default=500,
        ge=1,
        le=INT32_MAX,
        description="With fewer logged requests, a check reports InsufficientData, not a verdict.",
    )
    policy: Policy = Field(default_factory=Policy, description="When the data counts as drifted.")
    retrain: Retrain = Field(default_factory=Retrain, description="Retraining on drift.")

    @model_validator(mode="after")
    def _one_schedule(self) -> DriftMonitorSpec:
        if (self.schedule is None) == (self.interval is None):
            raise ValueError(SCHEDULE_CHOICE)
        return self


class DriftMonitorPhase(StrEnum):
    """Where a DriftMonitor is in its life."""

    PENDING = "Pending"
    HEALTHY = "Healthy"
    DRIFTED = "Drifted"
    INSUFFICIENT_DATA = "InsufficientData"
    FAILED = "Failed"


class Verdict(StrEnum):
    """The outcome of one check."""

    NO_DRIFT = "NoDrift"
    DRIFT = "Drift"
    INSUFFICIENT_DATA = "InsufficientData"


class FeatureDrift(GyreModel):
    """One feature's result in a check."""

    name: str = Field(description="Feature name.")
    method: str = Field(description="The method that decided, such as psi or chi_squared.")
    score: float = Field(description="The method's statistic (PSI, distance or p-value).")
    drifted: bool = Field(description="Whether the feature drifted.")
    scores: dict[str, float] | None = Field(
        default=None,
        description="Every method's score: psi, ks and chi_squared (p-values), "
        "jensen_shannon, wasserstein, and the test statistics.",
    )


class DriftCheck(GyreModel):
    """The result of one check."""

    id: str = Field(description="Check identifier, also the name suffix of its Job.")
    time: Timestamp = Field(description="When the check ran.")
    verdict: Verdict = Field(description="NoDrift, Drift or InsufficientData.")
    samples: int = Field(ge=0, le=INT64_MAX, description="Logged requests in the window.")
    drifted_feature_share: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Share of checked features that drifted."
    )
    features: list[FeatureDrift] = Field(
        default_factory=list,
        max_length=MAX_FEATURE_RESULTS,
        description="Per-feature results.",
    )
    report_uri: str | None = Field(default=None, description="The full report.")


class CheckRecord(GyreModel):
    """One past check, in the bounded history."""

    id: str = Field(description="Check identifier.")
    time: Timestamp = Field(description="When the check ran.")
    verdict: Verdict | None = Field(default=None, description="None when the check failed.")
    samples: int | None = Field(default=None, ge=0, le=INT64_MAX, description="Rows checked.")
    drifted_feature_share: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Share of checked features that drifted."
    )
    failure: str | None = Field(
        default=None, max_length=1024, description="Why the check failed: reason, then message."
    )
    report_uri: str | None = Field(default=None, description="The full report.")
    retrain_run: str | None = Field(default=None, description="The TrainingRun it started.")


class RetrainRecord(GyreModel):
    """A TrainingRun created by the monitor."""

    name: str = Field(description="The TrainingRun's name.")
    check_id: str = Field(description="The check that triggered it.")
    created_at: Timestamp = Field(description="When it was created.")
    dataset_digest: str | None = Field(
        default=None, description="The dataset version it trains on (never trained on twice)."
    )


class DriftMonitorStatus(ResourceStatus):
    """The observed state of a DriftMonitor."""

    phase: DriftMonitorPhase | None = Field(default=None, description="The last verdict.")
    last_check: DriftCheck | None = Field(default=None, description="The latest check.")
    next_check_time: Timestamp | None = Field(default=None, description="When the next runs.")
    history: list[CheckRecord] = Field(
        default_factory=list,
        max_length=MAX_CHECK_RECORDS,
        description=f"Past checks, newest first, at most {MAX_CHECK_RECORDS}.",
    )
    retrain_runs: list[RetrainRecord] = Field(
        default_factory=list,
        max_length=MAX_RETRAIN_RECORDS,
        description=f"TrainingRuns created on drift, newest first, at most {MAX_RETRAIN_RECORDS}.",
    )


class DriftMonitor(GyreResource):
    """Checks a served model's recent inputs for drift and retrains when the data has moved."""

    info: ClassVar[KindInfo] = KindInfo(
        kind="DriftMonitor",
        plural="driftmonitors",
        short_names=("gdm",),
        description="A DriftMonitor compares an InferenceService's logged inputs with the "
        "training data's profile on a schedule and, when the data has drifted, creates a "
        "TrainingRun whose result rolls out as a canary.",
        printer_columns=(
            PHASE_COLUMN,
            PrinterColumn("Service", ".spec.inferenceServiceRef.name"),
            PrinterColumn("Drifted", ".status.lastCheck.driftedFeatureShare", type="number"),
            PrinterColumn("Samples", ".status.lastCheck.samples", type="integer", priority=1),
            PrinterColumn("LastCheck", ".status.lastCheck.time", type="date"),
            AGE_COLUMN,
        ),
    )

    kind: Literal["DriftMonitor"] = "DriftMonitor"
    spec: DriftMonitorSpec = Field(description="The desired state of the DriftMonitor.")
    status: DriftMonitorStatus | None = Field(default=None, description="Set by the operator.")
