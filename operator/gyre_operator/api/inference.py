"""InferenceService: serves one model, rolls new versions out as canaries."""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from gyre_operator.api.common import (
    INT32_MAX,
    INT64_MAX,
    Duration,
    EnvVar,
    GyreModel,
    ModelName,
    ObjectName,
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

MAX_STEPS = 10
VERSION_CHOICE = "set exactly one of modelVersion and track"
INCREASING_WEIGHTS = "step weights must strictly increase"
GATEWAY_NEEDS_CONFIG = "trafficRouting.gatewayAPI is required when type is gatewayAPI"

# One comparison per adjacent pair; CEL has no index range, so the indices are spelled out
# (the list is bounded by MAX_STEPS, which also keeps the rule's cost estimate small).
_INCREASING_RULE = (
    f"!has(self.steps) || {list(range(1, MAX_STEPS))}.all(i, i >= size(self.steps) || "
    "self.steps[i].weight > self.steps[i - 1].weight)"
)


class Track(StrEnum):
    """Which ModelVersion to follow when none is pinned."""

    LATEST = "latest"


class RuntimeSpec(GyreModel):
    """The serving pods."""

    image: str | None = Field(
        default=None,
        min_length=1,
        description="The serving runtime image (an Open Inference Protocol v2 server); when "
        "absent, the runtime image the operator is configured with.",
    )
    replicas: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="Serving pods of the stable version. With replica-based traffic routing, "
        "canary weights are approximated by this many pods in total.",
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources of the server container."
    )
    env: list[EnvVar] | None = Field(default=None, description="Extra environment variables.")
    port: int = Field(default=8080, ge=1, le=65535, description="The server's HTTP port.")


class CanaryStep(GyreModel):
    """One step of a canary rollout: send this share of traffic, then wait."""

    weight: int = Field(ge=1, le=100, description="Percent of traffic to the canary (1-100).")
    pause: Duration | None = Field(
        default=None,
        description="How long the step lasts while analysis runs; when absent, one analysis "
        "interval.",
    )


class PrometheusSource(GyreModel):
    """Read the analysis figures from Prometheus instead of the pods."""

    url: str = Field(pattern=r"^https?://.+$", description="Base URL of the Prometheus HTTP API.")


class Analysis(GyreModel):
    """How a canary is judged at every interval."""

    interval: Duration = Field(default="30s", description="How often figures are read.")
    max_error_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Largest acceptable fraction of failed requests on the canary.",
    )
    max_latency_p99_ms: float | None = Field(
        default=None,
        gt=0.0,
        description="Largest acceptable 99th-percentile latency of the canary, in milliseconds.",
    )
    min_requests: int = Field(
        default=20,
        ge=0,
        le=INT32_MAX,
        description="With fewer canary requests in an interval, the analysis waits instead of "
        "judging (an empty result is never a failure).",
    )
    failure_limit: int = Field(
        default=2,
        ge=0,
        le=INT32_MAX,
        description="Failed intervals tolerated; one more rolls the canary back.",
    )
    step_deadline: Duration = Field(
        default="10m",
        description="A step that cannot gather minRequests within this time rolls back.",
    )
    prometheus: PrometheusSource | None = Field(
        default=None,
        description="Query Prometheus; when absent, the pods' /metrics are read directly.",
    )


class Rollout(GyreModel):
    """How a new version replaces the stable one."""

    model_config = cel_rules(
        CelRule(
            _INCREASING_RULE, INCREASING_WEIGHTS, field_path=".steps", reason="FieldValueInvalid"
        )
    )

    steps: list[CanaryStep] = Field(
        default_factory=lambda: [
            CanaryStep(weight=10, pause="2m"),
            CanaryStep(weight=50, pause="2m"),
        ],
        max_length=MAX_STEPS,
        description="Canary steps with strictly increasing weights. After the last step passes, "
        "the canary is promoted. An empty list replaces the stable version at once.",
    )
    analysis: Analysis = Field(default_factory=Analysis, description="How each step is judged.")

    @model_validator(mode="after")
    def _weights_increase(self) -> Rollout:
        weights = [s.weight for s in self.steps]
        if any(b <= a for a, b in pairwise(weights)):
            raise ValueError(INCREASING_WEIGHTS)
        return self


class RoutingType(StrEnum):
    """How canary traffic is split."""

    REPLICAS = "replicas"
    GATEWAY_API = "gatewayAPI"


class ParentReference(GyreModel):
    """A Gateway an HTTPRoute attaches to."""

    name: ObjectName = Field(description="Name of the Gateway.")
    namespace: str | None = Field(default=None, description="Namespace of the Gateway.")
    section_name: str | None = Field(default=None, description="A listener of the Gateway.")


class GatewayAPIRouting(GyreModel):
    """Weights on a Gateway API HTTPRoute."""

    parent_refs: list[ParentReference] = Field(
        min_length=1, description="The Gateways the HTTPRoute attaches to."
    )
    hostnames: list[str] | None = Field(default=None, description="Hostnames to match.")


class TrafficRouting(GyreModel):
    """How traffic is split between stable and canary."""

    model_config = cel_rules(
        CelRule("self.type != 'gatewayAPI' || has(self.gatewayAPI)", GATEWAY_NEEDS_CONFIG)
    )

    type: RoutingType = Field(
        default=RoutingType.REPLICAS,
        description="replicas: no mesh needed, the weight is approximated by pod counts behind "
        "one Service. gatewayAPI: exact weights on an HTTPRoute.",
    )
    gateway_api: GatewayAPIRouting | None = Field(
        default=None, alias="gatewayAPI", description="Settings for type gatewayAPI."
    )

    @model_validator(mode="after")
    def _gateway_configured(self) -> TrafficRouting:
        if self.type == RoutingType.GATEWAY_API and self.gateway_api is None:
            raise ValueError(GATEWAY_NEEDS_CONFIG)
        return self


class RequestLogging(GyreModel):
    """Logging of requests for drift checks."""

    enabled: bool = Field(default=True, description="Log sampled inputs and outputs.")
    sample_rate: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Fraction of requests logged."
    )


class InferenceServiceSpec(GyreModel):
    """The desired state of an InferenceService."""

    model_config = cel_rules(CelRule("has(self.modelVersion) != has(self.track)", VERSION_CHOICE))

    model: ModelName = Field(description="The model to serve.")
    model_version: int | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="Serve this version number of the model (pinned).",
    )
    track: Track | None = Field(
        default=None,
        description="latest: follow the newest Ready version, rolling each one out as a canary.",
    )
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, description="The serving pods.")
    rollout: Rollout = Field(default_factory=Rollout, description="How new versions roll out.")
    traffic_routing: TrafficRouting = Field(
        default_factory=TrafficRouting, description="How traffic is split."
    )
    request_logging: RequestLogging = Field(
        default_factory=RequestLogging, description="Logging of requests for drift checks."
    )

    @model_validator(mode="after")
    def _one_version_choice(self) -> InferenceServiceSpec:
        if (self.model_version is None) == (self.track is None):
            raise ValueError(VERSION_CHOICE)
        return self


class InferenceServicePhase(StrEnum):
    """Where an InferenceService is in its life."""

    PENDING = "Pending"
    READY = "Ready"
    PROGRESSING = "Progressing"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


class TrafficFigures(GyreModel):
    """Request figures of one side of a canary over the last interval."""

    requests: int = Field(ge=0, le=INT64_MAX, description="Requests in the interval.")
    error_rate: float | None = Field(default=None, ge=0.0, le=1.0, description="Failed share.")
    latency_p99_ms: float | None = Field(default=None, ge=0.0, description="p99 latency, ms.")


class AnalysisStatus(GyreModel):
    """The state of the running canary analysis."""

    failures: int = Field(
        default=0, ge=0, le=INT32_MAX, description="Failed intervals in this rollout."
    )
    passes: int = Field(
        default=0, ge=0, le=INT32_MAX, description="Passed intervals in the current step."
    )
    last_time: Timestamp | None = Field(default=None, description="When figures were last read.")
    last_result: str | None = Field(
        default=None, description="Passed, Failed or Inconclusive, with the reason."
    )
    canary: TrafficFigures | None = Field(default=None, description="Canary figures.")
    stable: TrafficFigures | None = Field(default=None, description="Stable figures.")


class FailedVersion(GyreModel):
    """A version that was rolled back, and why; never rolled out again automatically."""

    version: int = Field(ge=1, le=INT32_MAX, description="The ModelVersion's version number.")
    reason: str = Field(min_length=1, max_length=128, description="Why, in CamelCase.")
    message: str | None = Field(default=None, max_length=1024, description="Details.")
    time: Timestamp | None = Field(default=None, description="When it was rolled back.")


class InferenceServiceStatus(ResourceStatus):
    """The observed state of an InferenceService."""

    phase: InferenceServicePhase | None = Field(default=None, description="Where the service is.")
    url: str | None = Field(default=None, description="In-cluster URL of the service.")
    stable_version: int | None = Field(
        default=None, ge=1, le=INT32_MAX, description="The version serving traffic."
    )
    canary_version: int | None = Field(
        default=None, ge=1, le=INT32_MAX, description="The version being rolled out."
    )
    canary_weight: int = Field(default=0, ge=0, le=100, description="Percent of traffic to it.")
    current_step: int | None = Field(
        default=None, ge=0, le=MAX_STEPS, description="Index of the running canary step."
    )
    step_started_at: Timestamp | None = Field(default=None, description="When the step began.")
    analysis: AnalysisStatus | None = Field(default=None, description="The canary analysis.")
    failed_versions: list[FailedVersion] = Field(
        default_factory=list,
        max_length=100,
        description="Versions rolled back, newest last; they are never rolled out again "
        "automatically (`gyre rollout retry` removes one).",
    )


class InferenceService(GyreResource):
    """Serves one model over the Open Inference Protocol and rolls new versions out as canaries."""

    info: ClassVar[KindInfo] = KindInfo(
        kind="InferenceService",
        plural="inferenceservices",
        short_names=("gisvc",),
        description="An InferenceService serves one model over the Open Inference Protocol v2 "
        "and rolls new versions out as canaries, promoting or rolling back on live figures.",
        printer_columns=(
            PHASE_COLUMN,
            PrinterColumn("Model", ".spec.model"),
            PrinterColumn("Stable", ".status.stableVersion", type="integer"),
            PrinterColumn("Canary", ".status.canaryVersion", type="integer"),
            PrinterColumn("Weight", ".status.canaryWeight", type="integer"),
            PrinterColumn("URL", ".status.url", priority=1),
            AGE_COLUMN,
        ),
    )

    kind: Literal["InferenceService"] = "InferenceService"
    spec: InferenceServiceSpec = Field(description="The desired state of the InferenceService.")
    status: InferenceServiceStatus | None = Field(default=None, description="Set by the operator.")
