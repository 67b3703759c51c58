"""TrainingRun: one training attempt on a pinned dataset version."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from gyre_operator.api.common import (
    INT32_MAX,
    EnvVar,
    FreeForm,
    GyreModel,
    ModelName,
    ObjectName,
    ResourceRequirements,
    ResourceStatus,
    Sha256,
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

TRAINER_CHOICE = "set exactly one of algorithm (built-in trainer) and image (your own trainer)"
GATE_BOUND = "a gate needs min, max or both"
IMMUTABLE_RUN = "a TrainingRun's spec is immutable: create a new TrainingRun instead"


class Algorithm(StrEnum):
    """Algorithms of the built-in trainer (scikit-learn, exported to ONNX)."""

    LOGISTIC_REGRESSION = "logistic_regression"
    RANDOM_FOREST_CLASSIFIER = "random_forest_classifier"
    GRADIENT_BOOSTING_CLASSIFIER = "gradient_boosting_classifier"
    LINEAR_REGRESSION = "linear_regression"
    RIDGE = "ridge"
    RANDOM_FOREST_REGRESSOR = "random_forest_regressor"
    GRADIENT_BOOSTING_REGRESSOR = "gradient_boosting_regressor"


class DatasetReference(GyreModel):
    """A Dataset in the same namespace, and optionally one of its versions."""

    name: ObjectName = Field(description="Name of the Dataset.")
    digest: Sha256 | None = Field(
        default=None,
        description="Use this version of the data; when absent, the Dataset's current version "
        "at the moment the run starts is pinned in status.datasetDigest.",
    )


class Trainer(GyreModel):
    """How the model is trained: the built-in trainer or your own image."""

    model_config = cel_rules(CelRule("has(self.algorithm) != has(self.image)", TRAINER_CHOICE))

    algorithm: Algorithm | None = Field(
        default=None, description="An algorithm of the built-in scikit-learn trainer."
    )
    hyperparameters: FreeForm | None = Field(
        default=None,
        description="Keyword arguments for the algorithm (built-in) or values passed to your "
        "trainer as GYRE_HYPERPARAMETERS (JSON).",
    )
    validation_fraction: float = Field(
        default=0.2,
        gt=0.0,
        lt=1.0,
        description="Fraction of rows held out to compute the metrics that gates check.",
    )
    seed: int = Field(
        default=0, ge=0, le=2**32 - 1, description="Random seed for the split and the algorithm."
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        description="Your trainer's image. It reads GYRE_* environment variables and writes "
        "model.onnx and metrics.json to GYRE_OUTPUT_DIR.",
    )
    command: list[str] | None = Field(default=None, description="Entrypoint of your image.")
    args: list[str] | None = Field(default=None, description="Arguments to the entrypoint.")
    env: list[EnvVar] | None = Field(
        default=None, description="Extra environment variables for the training container."
    )

    @model_validator(mode="after")
    def _one_trainer(self) -> Trainer:
        if (self.algorithm is None) == (self.image is None):
            raise ValueError(TRAINER_CHOICE)
        return self


class Gate(GyreModel):
    """A metric bound a new model must meet to be registered as Ready."""

    model_config = cel_rules(CelRule("has(self.min) || has(self.max)", GATE_BOUND))

    metric: str = Field(
        min_length=1,
        max_length=128,
        description="Name of a metric the trainer reports, such as accuracy, f1, rmse, r2.",
    )
    min: float | None = Field(default=None, description="The metric must be at least this.")
    max: float | None = Field(default=None, description="The metric must be at most this.")

    @model_validator(mode="after")
    def _has_bound(self) -> Gate:
        if self.min is None and self.max is None:
            raise ValueError(GATE_BOUND)
        return self


def _unique_metrics(gates: list[Gate]) -> list[Gate]:
    metrics = [g.metric for g in gates]
    repeated = sorted({m for m in metrics if metrics.count(m) > 1})
    if repeated:
        raise ValueError(f"one gate per metric: {', '.join(repeated)} repeated")
    return gates


Gates = Annotated[
    list[Gate],
    AfterValidator(_unique_metrics),
    Field(
        max_length=32,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["metric"],
        },
    ),
]


class TrainingRunSpec(GyreModel):
    """The desired state of a TrainingRun."""

    model_config = cel_rules(CelRule("self == oldSelf", IMMUTABLE_RUN))

    dataset_ref: DatasetReference = Field(description="The data to train on.")
    model: ModelName = Field(description="The model name to register the result under.")
    trainer: Trainer = Field(description="How to train.")
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources of the training container."
    )
    backoff_limit: int = Field(
        default=1, ge=0, le=20, description="Retries of the training Job before it fails."
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="The run fails with reason DeadlineExceeded after this many seconds.",
    )
    gates: Gates = Field(
        default_factory=list,
        description="Metric bounds the model must meet; otherwise the run fails with reason "
        "GateNotMet and no ModelVersion is registered.",
    )


class TrainingRunPhase(StrEnum):
    """Where a TrainingRun is in its life."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrainingRunStatus(ResourceStatus):
    """The observed state of a TrainingRun."""

    phase: TrainingRunPhase | None = Field(default=None, description="Where the run is.")
    dataset_digest: Sha256 | None = Field(
        default=None, description="The dataset version pinned when the run started."
    )
    job_name: str | None = Field(default=None, description="The training Job.")
    start_time: Timestamp | None = Field(default=None, description="When training started.")
    completion_time: Timestamp | None = Field(default=None, description="When the run ended.")
    metrics: dict[str, float] | None = Field(
        default=None, description="Metrics on the held-out rows."
    )
    artifact_uri: str | None = Field(default=None, description="Where the trained model lives.")
    model_version: str | None = Field(
        default=None, description="The ModelVersion registered from this run."
    )


class TrainingRun(GyreResource):
    """One training attempt: a Job on a pinned dataset version that registers a ModelVersion."""

    info: ClassVar[KindInfo] = KindInfo(
        kind="TrainingRun",
        plural="trainingruns",
        short_names=("gtr",),
        description="A TrainingRun trains one model on a pinned Dataset version in a Job and, "
        "when the gates pass, registers the result as a ModelVersion.",
        printer_columns=(
            PHASE_COLUMN,
            PrinterColumn("Model", ".spec.model"),
            PrinterColumn("Dataset", ".spec.datasetRef.name"),
            PrinterColumn("ModelVersion", ".status.modelVersion"),
            PrinterColumn("Job", ".status.jobName", priority=1),
            AGE_COLUMN,
        ),
    )

    kind: Literal["TrainingRun"] = "TrainingRun"
    spec: TrainingRunSpec = Field(description="The desired state of the TrainingRun.")
    status: TrainingRunStatus | None = Field(default=None, description="Set by the operator.")
