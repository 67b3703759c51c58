"""The children of an InferenceService: serving Deployments, Services and an HTTPRoute.

Pure manifest builders, and `covers`: whether an observed object already has every field
Gyre sets (the API server adds defaults Gyre never sets; those are not differences).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gyre_operator.api import InferenceService, ModelVersion, to_wire
from gyre_operator.api.inference import RoutingType
from gyre_operator.builders.jobs import (
    Container,
    ContainerTermination,
    parse_termination,
    pod_spec,
)
from gyre_operator.builders.naming import child_labels, child_name, owner_reference
from gyre_operator.builders.trainingrun import MODEL_LABEL
from gyre_operator.config import OperatorConfig

COMPONENT = "predictor"
SERVICE_LABEL = "gyre.dev/inferenceservice"
TRACK_LABEL = "gyre.dev/track"
VERSION_LABEL = "gyre.dev/model-version"
MODEL_DIR = "/gyre/model"
MODEL_FILE = f"{MODEL_DIR}/model.onnx"
SERVICE_PORT = 80
PORT_NAME = "http"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
TERMINATION_GRACE_SECONDS = 30
# Requests keep arriving for a moment after a pod is told to stop (endpoints propagate
# asynchronously); the server keeps answering this long before it drains.
SHUTDOWN_DELAY_SECONDS = 2
# Waiting reasons every new pod passes through: no problem unless a run ended in error.
STARTING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})


class Track(StrEnum):
    """The two sides of a canary rollout."""

    STABLE = "stable"
    CANARY = "canary"


@dataclass(frozen=True)
class Side:
    """One serving Deployment: which version, how many pods."""

    track: Track
    version: ModelVersion
    replicas: int


def deployment_name(service: str, track: Track) -> str:
    """`<name>-stable` or `<name>-canary`."""
    return child_name(service, track.value)


def track_service_name(service: str, track: Track) -> str:
    """The per-track Service an HTTPRoute weighs: `<name>-stable`, `<name>-canary`."""
    return child_name(service, f"{track.value}-svc")


def split_replicas(total: int, weight: int, routing: RoutingType) -> tuple[int, int]:
    """(stable, canary) pod counts for a canary weight in percent. With replica routing the
    pods are the weight, so they share `total` (at least one each); behind an HTTPRoute the
    route sets the weight, stable keeps all its pods and the canary gets its share."""
    if routing == RoutingType.GATEWAY_API:
        return total, max(1, math.ceil(total * weight / 100))
    if total < 2:
        return 1, 1
    # Half rounds up (Python's round() would round half to even: 25% of 10 pods gives 3).
    canary = min(total - 1, max(1, math.floor(total * weight / 100 + 0.5)))
    return total - canary, canary


def effective_weight(stable: int, canary: int, weight: int, routing: RoutingType) -> int:
    """The share of traffic the canary really gets, in percent."""
    if routing == RoutingType.GATEWAY_API:
        return weight
    return round(100 * canary / (stable + canary)) if canary else 0


def build_deployment(
    owner: dict[str, Any], isvc: InferenceService, side: Side, config: OperatorConfig
) -> dict[str, Any]:
    """The Deployment that serves one version on one side of the rollout."""
    name = owner["metadata"]["name"]
    selector = {SERVICE_LABEL: name, TRACK_LABEL: side.track.value}
    labels = {**child_labels(owner, COMPONENT), **selector}
    pod_labels = {
        **labels,
        MODEL_LABEL: isvc.spec.model,
        VERSION_LABEL: str(side.version.spec.version),
    }
    spec = pod_spec(
        (_server(name, isvc, side.version, config),),
        (_fetch(side.version, config),),
        shared_dirs=(MODEL_DIR,),
        restart_policy="Always",
    )
    spec["terminationGracePeriodSeconds"] = TERMINATION_GRACE_SECONDS
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name, side.track),
            "namespace": owner["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "replicas": side.replicas,
            "selector": {"matchLabels": selector},
            # No pod goes before its replacement is ready: a rollout never drops capacity.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {"metadata": {"labels": pod_labels}, "spec": spec},
        },
    }


def _fetch(version: ModelVersion, config: OperatorConfig) -> Container:
    artifact = version.spec.artifact
    return Container(
        name="fetch-model",
        image=config.runtime_image,
        args=("fetch", "--uri", artifact.uri, "--sha256", artifact.sha256, "--output", MODEL_FILE),
        secrets=config.secrets(),
        uris=(artifact.uri,),
    )


def _server(
    name: str, isvc: InferenceService, version: ModelVersion, config: OperatorConfig
) -> Container:
    spec = isvc.spec
    lineage = version.spec.lineage
    parameters = {
        "modelVersion": version.metadata["name"],
        **(to_wire(lineage) if lineage is not None else {}),
    }
    args = [
        "serve",
        "--model", MODEL_FILE,
        "--sha256", version.spec.artifact.sha256,
        "--name", spec.model,
        "--version", str(version.spec.version),
        "--port", str(spec.runtime.port),
        "--service", name,
        "--shutdown-delay", str(SHUTDOWN_DELAY_SECONDS),
        "--parameters", json.dumps(parameters, sort_keys=True, separators=(",", ":")),
    ]  # fmt: skip
    logging = spec.request_logging
    if logging.enabled and logging.sample_rate > 0:
        args += [
            "--request-log-root", config.artifact_root,
            "--request-log-sample-rate", f"{logging.sample_rate:g}",
        ]  # fmt: skip
        if lineage is not None and lineage.features:
            args += ["--features", ",".join(lineage.features)]
    runtime = spec.runtime
    return Container(
        name="server",
        image=runtime.image or config.runtime_image,
        args=tuple(args),
        env=tuple(to_wire(variable) for variable in runtime.env or ()),
        secrets=config.secrets() if logging.enabled else (),
        # The request log's root may be a claim (pvc://): the server writes there.
        uris=(config.artifact_root,) if logging.enabled and logging.sample_rate > 0 else (),
        resources=to_wire(runtime.resources) if runtime.resources is not None else None,
        ports=({"name": PORT_NAME, "containerPort": runtime.port, "protocol": "TCP"},),
        probes={
            "startupProbe": _probe("/v2/health/live", period=1, failures=300),
            "readinessProbe": _probe("/v2/health/ready", period=2, failures=1),
            "livenessProbe": _probe("/v2/health/live", period=10, failures=3),
        },
    )


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 1,
        "failureThreshold": failures,
    }


def build_service(owner: dict[str, Any], name: str, selector: Mapping[str, str]) -> dict[str, Any]:
    """A ClusterIP Service on port 80 over the serving pods the selector picks."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": {**child_labels(owner, COMPONENT), SERVICE_LABEL: owner["metadata"]["name"]},
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": SERVICE_PORT,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_services(owner: dict[str, Any], isvc: InferenceService) -> list[dict[str, Any]]:
    """Service `<name>` over every serving pod; with Gateway API routing, one per track too."""
    name = owner["metadata"]["name"]
    services = [build_service(owner, name, {SERVICE_LABEL: name})]
    if isvc.spec.traffic_routing.type == RoutingType.GATEWAY_API:
        services += [
            build_service(
                owner, track_service_name(name, track), {SERVICE_LABEL: name, TRACK_LABEL: track}
            )
            for track in Track
        ]
    return services


def build_route(
    owner: dict[str, Any], isvc: InferenceService, canary_weight: int
) -> dict[str, Any]:
    """The HTTPRoute splitting traffic between the track Services with exact weights."""
    gateway = isvc.spec.traffic_routing.gateway_api
    assert gateway is not None  # the API refuses gatewayAPI routing without its settings
    name = owner["metadata"]["name"]
    backends = [
        {"name": track_service_name(name, Track.STABLE), "port": SERVICE_PORT,
         "weight": 100 - canary_weight},
        {"name": track_service_name(name, Track.CANARY), "port": SERVICE_PORT,
         "weight": canary_weight},
    ]  # fmt: skip
    spec: dict[str, Any] = {
        "parentRefs": [to_wire(parent) for parent in gateway.parent_refs],
        "rules": [{"backendRefs": backends}],
    }
    if gateway.hostnames:
        spec["hostnames"] = list(gateway.hostnames)
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": {**child_labels(owner, COMPONENT), SERVICE_LABEL: name},
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": spec,
    }


def covers(observed: Any, desired: Any) -> bool:
    """Whether observed holds every field of desired with the same value (equal on the
    fields Gyre owns; lists must match element by element)."""
    if isinstance(desired, Mapping):
        return isinstance(observed, Mapping) and all(
            covers(observed.get(key), value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(observed) == len(desired)
            and all(covers(o, d) for o, d in zip(observed, desired, strict=True))
        )
    return bool(observed == desired)


def deployment_version(deployment: Mapping[str, Any] | None) -> int | None:
    """The model version a serving Deployment's pod template serves."""
    if deployment is None:
        return None
    labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
    value = labels.get(VERSION_LABEL)
    return int(value) if value is not None and str(value).isdigit() else None


def rolled_out(deployment: Mapping[str, Any] | None, replicas: int) -> bool:
    """Whether a Deployment runs exactly `replicas` ready pods of its current template."""
    if deployment is None:
        return False
    status = deployment.get("status") or {}
    generation = deployment["metadata"].get("generation")
    return bool(
        status.get("observedGeneration") == generation
        and deployment["spec"].get("replicas") == replicas
        and status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and status.get("availableReplicas", 0) >= replicas
    )


def ready_pods(deployment: Mapping[str, Any] | None) -> int:
    """How many of a Deployment's pods are ready."""
    if deployment is None:
        return 0
    return int((deployment.get("status") or {}).get("readyReplicas", 0))


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Whether a pod's Ready condition is True (only ready pods are asked for figures)."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_problem(pods: list[dict[str, Any]]) -> str | None:
    """Why serving pods are not ready, from the first one that says: a waiting reason
    (CrashLoopBackOff, CreateContainerConfigError) and what its last run reported."""
    for pod in pods:
        status = pod.get("status") or {}
        containers = [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]
        for container in containers:
            if container.get("ready"):
                continue
            waiting = (container.get("state") or {}).get("waiting") or {}
            ended = (container.get("lastState") or {}).get("terminated") or (
                container.get("state") or {}
            ).get("terminated")
            failed = bool(ended and ended.get("exitCode", 0) != 0)
            if waiting.get("reason") in STARTING_REASONS and not failed:
                continue
            parts = [waiting.get("reason", "")]
            if ended and failed:
                report = parse_termination(
                    ContainerTermination(int(ended["exitCode"]), ended.get("message", ""))
                )
                parts.append(": ".join(p for p in (report.reason, report.message) if p))
            text = ": ".join(p for p in parts if p)
            if text:
                return f"pod {pod['metadata']['name']} container {container.get('name')}: {text}"
    return None
