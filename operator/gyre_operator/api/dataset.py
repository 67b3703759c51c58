"""Dataset: where training data lives, what it must look like, and its profiled versions."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from gyre_operator.api.common import (
    INT64_MAX,
    Duration,
    GyreModel,
    LocalObjectReference,
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

SOURCE_URI_PATTERN = r"^(s3|gs|file|pvc|https|http)://.+$"
MAX_VERSIONS = 20


class DataFormat(StrEnum):
    """File formats a Dataset can be read from."""

    CSV = "csv"
    PARQUET = "parquet"


class FeatureType(StrEnum):
    """How a feature is treated by profiling and drift checks."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class DataSource(GyreModel):
    """Where the data is read from."""

    uri: str = Field(
        pattern=SOURCE_URI_PATTERN,
        max_length=2048,
        description="Location of the data: s3://bucket/key, gs://bucket/key, file:///path, "
        "pvc://<claim>/<path> or https://host/path. A directory or prefix is read as the "
        "concatenation of its files in name order.",
    )
    secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="A Secret whose keys are passed to the profile and training pods as "
        "environment variables (for example AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_ENDPOINT_URL).",
    )


class Feature(GyreModel):
    """One declared column of the data."""

    name: str = Field(min_length=1, max_length=256, description="Column name.")
    type: FeatureType = Field(description="numeric or categorical.")


class DataSchema(GyreModel):
    """The columns the data must have."""

    model_config = cel_rules(
        CelRule(
            "!has(self.target) || !self.features.exists(f, f.name == self.target)",
            "target must not also be listed in features",
            field_path=".target",
        )
    )

    features: list[Feature] = Field(
        min_length=1,
        max_length=1000,
        description="Input features, in the order the model receives them.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    target: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The label column that training predicts. Required for built-in training.",
    )

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> DataSchema:
        if self.target is not None and any(f.name == self.target for f in self.features):
            raise ValueError("target must not also be listed in features")
        if len({f.name for f in self.features}) != len(self.features):
            raise ValueError("feature names must be unique")
        return self


class ValidationRules(GyreModel):
    """Checks the profile job applies; a Dataset whose data fails them is not Ready."""

    min_rows: int | None = Field(
        default=None, ge=0, le=INT64_MAX, description="The data must have at least this many rows."
    )
    max_null_fraction: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="In every column, at most this fraction of values may be missing.",
    )
    allowed_categories: dict[str, list[str]] | None = Field(
        default=None,
        description="For a categorical feature, the only values it may take.",
    )


ZERO_REFRESH = "refreshInterval must be longer than zero"
# A duration of nothing but zeros; written without backslashes so it reads the same in CEL.
ZERO_DURATION_PATTERN = "^(0+([.]0+)?(ms|s|m|h))+$"


class DatasetSpec(GyreModel):
    """The desired state of a Dataset."""

    model_config = cel_rules(
        CelRule(
            "!has(self.refreshInterval) || "
            f"!self.refreshInterval.matches('{ZERO_DURATION_PATTERN}')",
            ZERO_REFRESH,
            field_path=".refreshInterval",
        )
    )

    source: DataSource = Field(description="Where the data is read from.")
    format: DataFormat = Field(default=DataFormat.CSV, description="csv or parquet.")
    schema_: DataSchema | None = Field(
        default=None,
        alias="schema",
        description="The declared columns; when absent, they are inferred by the profile job.",
    )
    validation: ValidationRules | None = Field(
        default=None, description="Checks the data must pass to become Ready."
    )
    refresh_interval: Duration | None = Field(
        default=None,
        description="Profile the source again this often; new content becomes a new version. "
        "When absent, the data is profiled when the spec changes.",
    )

    @model_validator(mode="after")
    def _refresh_after_some_time(self) -> DatasetSpec:
        if self.refresh_interval is not None and re.fullmatch(
            ZERO_DURATION_PATTERN, self.refresh_interval
        ):
            raise ValueError(ZERO_REFRESH)
        return self


class DatasetPhase(StrEnum):
    """Where a Dataset is in its life."""

    PENDING = "Pending"
    PROFILING = "Profiling"
    READY = "Ready"
    FAILED = "Failed"


class DatasetVersion(GyreModel):
    """One profiled content version of the data."""

    digest: Sha256 = Field(description="SHA-256 of the data's bytes: the version's identity.")
    rows: int = Field(ge=0, le=INT64_MAX, description="Number of rows.")
    profile_uri: str = Field(description="Where the full profile (per-feature statistics) lives.")
    profiled_at: Timestamp = Field(description="When the profile was made.")


class DatasetStatus(ResourceStatus):
    """The observed state of a Dataset."""

    phase: DatasetPhase | None = Field(
        default=None, description="Where the Dataset is in its life."
    )
    current_version: DatasetVersion | None = Field(
        default=None, description="The newest profiled version."
    )
    versions: list[DatasetVersion] = Field(
        default_factory=list,
        max_length=MAX_VERSIONS,
        description=f"Profiled versions, newest first, at most {MAX_VERSIONS}.",
    )
    profile_job: str | None = Field(
        default=None,
        description="The profile Job whose outcome the status shows (while a first profile "
        "runs, that Job); a refresh's Job is named here once it is recorded.",
    )


class Dataset(GyreResource):
    """Where training data lives and what it looks like; each content digest is a version."""

    info: ClassVar[KindInfo] = KindInfo(
        kind="Dataset",
        plural="datasets",
        short_names=("gds",),
        description="A Dataset says where training data lives and what it must look like. "
        "Gyre profiles it; each content digest becomes a version and the drift reference "
        "for models trained on it.",
        printer_columns=(
            PHASE_COLUMN,
            PrinterColumn("Rows", ".status.currentVersion.rows", type="integer"),
            PrinterColumn("Format", ".spec.format"),
            PrinterColumn("Digest", ".status.currentVersion.digest", priority=1),
            PrinterColumn("Source", ".spec.source.uri", priority=1),
            AGE_COLUMN,
        ),
    )

    kind: Literal["Dataset"] = "Dataset"
    spec: DatasetSpec = Field(description="The desired state of the Dataset.")
    status: DatasetStatus | None = Field(default=None, description="Set by the operator.")
