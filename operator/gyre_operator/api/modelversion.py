"""ModelVersion: an immutable, registered model artifact."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from gyre_operator.api.common import (
    INT32_MAX,
    INT64_MAX,
    FreeForm,
    GyreModel,
    ModelName,
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

IMMUTABLE_VERSION = "a ModelVersion's spec is immutable: register a new version instead"


class ArtifactFormat(StrEnum):
    """Model file formats the serving runtime loads."""

    ONNX = "onnx"


class TensorDatatype(StrEnum):
    """Tensor element types of the Open Inference Protocol."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"


class Artifact(GyreModel):
    """Where the model file lives and how to check it."""

    uri: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^(s3|gs|file|pvc|https|http)://.+$",
        description="Location of the model file.",
    )
    format: ArtifactFormat = Field(default=ArtifactFormat.ONNX, description="The file format.")
    sha256: Sha256 = Field(
        description="SHA-256 of the file; the server refuses to start when it differs."
    )


class TensorSpec(GyreModel):
    """One named input or output tensor."""

    name: str = Field(min_length=1, description="Tensor name in the model graph.")
    datatype: TensorDatatype = Field(description="Element type, as in the Open Inference Protocol.")
    shape: list[Annotated[int, Field(ge=-1, le=INT64_MAX)]] = Field(
        max_length=16,
        description="Dimensions; -1 marks a dynamic one, such as the batch size.",
    )


class Signature(GyreModel):
    """The model's inputs and outputs."""

    inputs: list[TensorSpec] = Field(min_length=1, description="Input tensors.")
    outputs: list[TensorSpec] = Field(min_length=1, description="Output tensors.")


class Lineage(GyreModel):
    """Where a model came from."""

    training_run: str | None = Field(default=None, description="The TrainingRun that made it.")
    dataset: str | None = Field(default=None, description="The Dataset it was trained on.")
    dataset_digest: Sha256 | None = Field(
        default=None, description="The dataset version it was trained on."
    )
    algorithm: str | None = Field(default=None, description="The training algorithm.")
    hyperparameters: FreeForm | None = Field(default=None, description="Training parameters.")
    trainer_image: str | None = Field(default=None, description="The trainer's container image.")
    features: list[str] | None = Field(
        default=None, description="Input feature names in the order the model expects them."
    )


class ModelVersionSpec(GyreModel):
    """The registered model; set once, never changed."""

    model_config = cel_rules(CelRule("self == oldSelf", IMMUTABLE_VERSION))

    model: ModelName = Field(description="The model this is a version of.")
    version: int = Field(ge=1, le=INT32_MAX, description="Version number, increasing per model.")
    artifact: Artifact = Field(description="The model file.")
    signature: Signature | None = Field(
        default=None,
        description="Inputs and outputs; when absent, read from the artifact into status.",
    )
    metrics: dict[str, float] | None = Field(
        default=None, description="Evaluation metrics, such as accuracy."
    )
    lineage: Lineage | None = Field(default=None, description="Where the model came from.")
    description: str | None = Field(default=None, max_length=4096, description="Free text.")


class ModelVersionPhase(StrEnum):
    """Where a ModelVersion is in its life."""

    PENDING = "Pending"
    READY = "Ready"
    FAILED = "Failed"


class ModelVersionStatus(ResourceStatus):
    """The observed state of a ModelVersion."""

    phase: ModelVersionPhase | None = Field(default=None, description="Where the version is.")
    signature: Signature | None = Field(
        default=None, description="Inputs and outputs as read from the artifact."
    )
    verified_at: Timestamp | None = Field(
        default=None, description="When the artifact's digest was checked."
    )
    served_by: list[str] = Field(
        default_factory=list,
        description="InferenceServices serving this version; while any does, deletion waits.",
    )


class ModelVersion(GyreResource):
    """An immutable, registered model artifact with its signature, metrics and lineage."""

    info: ClassVar[KindInfo] = KindInfo(
        kind="ModelVersion",
        plural="modelversions",
        short_names=("gmv",),
        description="A ModelVersion is an immutable, registered model artifact with its "
        "signature, metrics and lineage, like a model version in a model registry.",
        printer_columns=(
            PrinterColumn("Model", ".spec.model"),
            PrinterColumn("Version", ".spec.version", type="integer"),
            PHASE_COLUMN,
            PrinterColumn("TrainingRun", ".spec.lineage.trainingRun", priority=1),
            PrinterColumn("URI", ".spec.artifact.uri", priority=1),
            AGE_COLUMN,
        ),
    )

    kind: Literal["ModelVersion"] = "ModelVersion"
    spec: ModelVersionSpec = Field(description="The registered model.")
    status: ModelVersionStatus | None = Field(default=None, description="Set by the operator.")
