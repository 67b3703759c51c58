"""Types shared by the five Gyre kinds: base model, conditions, references, durations."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "gyre.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# At most six digits a part and 32 characters: every duration fits a timedelta (and a
# Kubernetes duration), so nothing downstream can overflow on one.
DURATION_PATTERN = r"^([0-9]{1,6}(\.[0-9]{1,6})?(ms|s|m|h))+$"
DURATION_MAX_LENGTH = 32
SHA256_PATTERN = r"^[a-f0-9]{64}$"
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

ObjectName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of an object in the same namespace.",
    ),
]
ModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        pattern=DNS_LABEL_PATTERN,
        description=(
            "Name of a registered model: a DNS label of at most 40 characters, because Gyre "
            "derives child object names from it (for example <model>-v<version>)."
        ),
    ),
]
Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        max_length=DURATION_MAX_LENGTH,
        description="A duration such as 30s, 2m, 1h30m or 500ms.",
    ),
]
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN, description="A lower-case hex SHA-256.")]
Quantity = Annotated[
    int | str,
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
    Field(description="A Kubernetes resource quantity such as 500m, 2, 1Gi."),
]
Timestamp = Annotated[
    str, Field(description="An RFC 3339 timestamp in UTC, for example 2026-01-02T15:04:05Z.")
]
FreeForm = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


class GyreModel(BaseModel):
    """Base of every Gyre API model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        validate_default=True,
    )


def to_wire(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a model as Kubernetes stores it: camelCase, unset fields left out."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """The timedelta of a duration string such as ``1h30m``; ValueError if it is not one."""
    if len(text) > DURATION_MAX_LENGTH or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: expected a form like 30s, 2m, 1h30m, 500ms")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def format_timestamp(moment: datetime) -> str:
    """An RFC 3339 UTC timestamp with second precision, as Kubernetes writes them."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalObjectReference(GyreModel):
    """A reference to an object of a known kind in the same namespace."""

    name: ObjectName = Field(description="Name of the referenced object.")


class KeySelector(GyreModel):
    """Selects one key of a Secret or ConfigMap."""

    name: ObjectName = Field(description="Name of the Secret or ConfigMap.")
    key: str = Field(min_length=1, description="The key to select.")
    optional: bool | None = Field(default=None, description="Whether the reference may be missing.")


class EnvVarSource(GyreModel):
    """Where an environment variable's value comes from."""

    secret_key_ref: KeySelector | None = Field(
        default=None, description="A key of a Secret in the same namespace."
    )
    config_map_key_ref: KeySelector | None = Field(
        default=None, description="A key of a ConfigMap in the same namespace."
    )


class EnvVar(GyreModel):
    """An environment variable for a container, as in a Pod spec."""

    name: str = Field(min_length=1, description="Name of the environment variable.")
    value: str | None = Field(default=None, description="A literal value.")
    value_from: EnvVarSource | None = Field(
        default=None, description="Take the value from a Secret or ConfigMap key instead."
    )


class ResourceRequirements(GyreModel):
    """Compute resources of a container, as in a Pod spec."""

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources, such as cpu: 500m, memory: 1Gi."
    )
    limits: dict[str, Quantity] | None = Field(
        default=None, description="Maximum resources, such as cpu: 2, memory: 4Gi."
    )


class ConditionStatus(StrEnum):
    """The status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(GyreModel):
    """One aspect of an object's current state, in the shape of metav1.Condition."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Type of condition in CamelCase, for example Ready.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        le=INT64_MAX,
        description="The .metadata.generation the condition was set from.",
    )
    last_transition_time: Timestamp = Field(
        description="When the condition last changed from one status to another."
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="A CamelCase, machine-readable reason for the last transition.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="A human-readable explanation of the last transition.",
    )


def get_condition(conditions: list[Condition], condition_type: str) -> Condition | None:
    """The condition of the given type, or None."""
    return next((c for c in conditions if c.type == condition_type), None)


def is_condition_true(conditions: list[Condition], condition_type: str) -> bool:
    """Whether the condition of the given type exists and is True."""
    found = get_condition(conditions, condition_type)
    return found is not None and found.status == ConditionStatus.TRUE


def set_condition(
    conditions: list[Condition],
    condition_type: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: datetime | None = None,
) -> list[Condition]:
    """The conditions with one set; its lastTransitionTime moves only when its status changes."""
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    previous = get_condition(conditions, condition_type)
    transition_time = (
        previous.last_transition_time
        if previous is not None and previous.status == status
        else format_timestamp(now or datetime.now(UTC))
    )
    updated = Condition(
        type=condition_type,
        status=status,
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        last_transition_time=transition_time,
    )
    others = [c for c in conditions if c.type != condition_type]
    if previous is None:
        return [*others, updated]
    return [updated if c.type == condition_type else c for c in conditions]


class ResourceStatus(GyreModel):
    """The status fields every Gyre kind has."""

    observed_generation: int | None = Field(
        default=None,
        ge=0,
        le=INT64_MAX,
        description="The .metadata.generation the operator last acted on.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Current state of the object; a top-level Ready condition is always present "
        "once the operator has seen the object.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
