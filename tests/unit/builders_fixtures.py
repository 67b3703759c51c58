"""Factories for the builders' unit tests: objects as the API server returns them, and Jobs."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from gyre_operator.api import Dataset
from gyre_operator.builders.jobs import JobState, ObservedJob, RuntimeResult
from gyre_operator.config import OperatorConfig

NAMESPACE = "ml"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW_TEXT = "2026-01-02T03:04:05Z"
CREATED = "2026-01-02T03:00:00Z"  # 245 s before NOW
EARLIER = "2026-01-01T00:00:00Z"
CONFIG = OperatorConfig(artifact_root="s3://gyre/artifacts", runtime_image="gyre-runtime:test")

DIGEST_A = "a" * 64
DIGEST_B = "b" * 64
DIGEST_C = "c" * 64
SHA_MODEL = "d" * 64

SIGNATURE: dict[str, Any] = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
}
OTHER_SIGNATURE: dict[str, Any] = {
    "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
    "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
}
IRIS_SCHEMA: dict[str, Any] = {
    "features": [
        {"name": "sepal_length", "type": "numeric"},
        {"name": "species_group", "type": "categorical"},
    ],
    "target": "species",
}


def metadata(
    name: str,
    *,
    uid: str | None = None,
    generation: int = 1,
    created: str = CREATED,
    **extra: Any,
) -> dict[str, Any]:
    """metadata as the API server fills it in."""
    return {
        "name": name,
        "namespace": NAMESPACE,
        "uid": uid or f"uid-{name}",
        "generation": generation,
        "creationTimestamp": created,
        "resourceVersion": "1234",
        **extra,
    }


def dataset_obj(
    name: str = "iris",
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    generation: int = 1,
    created: str = CREATED,
    **spec_fields: Any,
) -> dict[str, Any]:
    """A Dataset dict; spec_fields are merged over a csv source."""
    body = spec if spec is not None else {"source": {"uri": "s3://data/iris.csv"}, "format": "csv"}
    obj: dict[str, Any] = {
        "apiVersion": "gyre.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": metadata(name, generation=generation, created=created),
        "spec": {**copy.deepcopy(body), **copy.deepcopy(spec_fields)},
    }
    if status is not None:
        obj["status"] = copy.deepcopy(status)
    return obj


def version(digest: str, rows: int = 150, profiled_at: str = EARLIER) -> dict[str, Any]:
    """One entry of a Dataset's status.versions."""
    return {
        "digest": digest,
        "rows": rows,
        "profileUri": f"s3://gyre/artifacts/datasets/iris/{digest}/profile.json",
        "profiledAt": profiled_at,
    }


def ready_condition(
    status: str, reason: str, *, at: str = EARLIER, generation: int | None = 1, message: str = ""
) -> dict[str, Any]:
    """A Ready condition on the wire."""
    out: dict[str, Any] = {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": at,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def ready_dataset_status(
    digest: str = DIGEST_A, *, profile_job: str | None = None, generation: int = 1
) -> dict[str, Any]:
    """The status of a profiled, Ready Dataset."""
    status: dict[str, Any] = {
        "phase": "Ready",
        "observedGeneration": generation,
        "currentVersion": version(digest),
        "versions": [version(digest)],
        "conditions": [ready_condition("True", "Profiled", generation=generation)],
    }
    if profile_job is not None:
        status["profileJob"] = profile_job
    return status


def dataset_model(
    name: str = "iris",
    *,
    status: dict[str, Any] | None = None,
    schema: dict[str, Any] | None = IRIS_SCHEMA,
    **spec_fields: Any,
) -> Dataset:
    """A Dataset as a TrainingRun's reconcile observes it (parsed)."""
    fields = dict(spec_fields)
    if schema is not None:
        fields["schema"] = schema
    return Dataset.model_validate(dataset_obj(name, status=status, **fields))


def trainingrun_obj(
    name: str = "iris-run",
    *,
    trainer: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    generation: int = 1,
    created: str = CREATED,
    **spec_fields: Any,
) -> dict[str, Any]:
    """A TrainingRun dict with the built-in trainer by default."""
    spec: dict[str, Any] = {
        "datasetRef": {"name": "iris"},
        "model": "iris",
        "trainer": trainer if trainer is not None else {"algorithm": "logistic_regression"},
    }
    spec.update(spec_fields)
    obj: dict[str, Any] = {
        "apiVersion": "gyre.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": metadata(name, generation=generation, created=created),
        "spec": copy.deepcopy(spec),
    }
    if status is not None:
        obj["status"] = copy.deepcopy(status)
    return obj


def modelversion_obj(
    name: str = "iris-v3",
    *,
    sha256: str = SHA_MODEL,
    signature: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    finalizers: list[str] | None = None,
    deleting: bool = False,
    generation: int = 1,
) -> dict[str, Any]:
    """A ModelVersion dict, registered by a user unless annotations say otherwise."""
    extra: dict[str, Any] = {}
    if annotations is not None:
        extra["annotations"] = dict(annotations)
    if finalizers is not None:
        extra["finalizers"] = list(finalizers)
    if deleting:
        extra["deletionTimestamp"] = NOW_TEXT
    spec: dict[str, Any] = {
        "model": "iris",
        "version": 3,
        "artifact": {"uri": "s3://models/iris/3/model.onnx", "format": "onnx", "sha256": sha256},
    }
    if signature is not None:
        spec["signature"] = copy.deepcopy(signature)
    obj: dict[str, Any] = {
        "apiVersion": "gyre.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": metadata(name, generation=generation, **extra),
        "spec": spec,
    }
    if status is not None:
        obj["status"] = copy.deepcopy(status)
    return obj


def succeeded(data: dict[str, Any]) -> RuntimeResult:
    """What a runtime that succeeded reported."""
    return RuntimeResult(data=copy.deepcopy(data))


def failed(reason: str, message: str) -> RuntimeResult:
    """What a runtime that failed reported."""
    return RuntimeResult(
        data={"reason": reason, "message": message}, reason=reason, message=message
    )


def observed_job(
    name: str,
    state: JobState = JobState.ACTIVE,
    *,
    result: RuntimeResult | None = None,
    annotations: dict[str, str] | None = None,
    condition_reason: str = "",
    condition_message: str = "",
    start_time: str | None = None,
    completion_time: str | None = None,
) -> ObservedJob:
    """A child Job as a controller hands it to a builder."""
    return ObservedJob(
        name=name,
        state=state,
        annotations=dict(annotations or {}),
        condition_reason=condition_reason,
        condition_message=condition_message,
        start_time=start_time,
        completion_time=completion_time,
        result=result,
    )


def condition(status: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    """One condition of a status dict on the wire; KeyError when it is missing."""
    for found in status.get("conditions") or []:
        if found["type"] == kind:
            return dict(found)
    raise KeyError(kind)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """A container's literal env as name -> value."""
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def servable_version(
    number: int,
    *,
    model: str = "iris",
    phase: str | None = "Ready",
    uri: str | None = None,
    features: list[str] | None = None,
) -> dict[str, Any]:
    """A ModelVersion of a model by number, as an InferenceService's reconcile reads it
    (its sha256 is the number in hex, so each version has its own)."""
    spec: dict[str, Any] = {
        "model": model,
        "version": number,
        "artifact": {
            "uri": uri or f"s3://gyre/artifacts/models/{model}/run-{number}/model.onnx",
            "format": "onnx",
            "sha256": f"{number:064x}",
        },
    }
    if features is not None:
        spec["lineage"] = {"trainingRun": f"{model}-run-{number}", "features": list(features)}
    obj: dict[str, Any] = {
        "apiVersion": "gyre.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": metadata(f"{model}-v{number}"),
        "spec": spec,
    }
    if phase is not None:
        obj["status"] = {"phase": phase, "observedGeneration": 1}
    return obj


def inferenceservice_obj(
    name: str = "iris-svc",
    *,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    generation: int = 1,
    **spec_fields: Any,
) -> dict[str, Any]:
    """An InferenceService dict following the latest version of model iris unless
    spec_fields say otherwise (modelVersion=N pins one instead)."""
    spec: dict[str, Any] = {"model": "iris"}
    if "modelVersion" not in spec_fields:
        spec["track"] = "latest"
    spec.update(spec_fields)
    extra: dict[str, Any] = {}
    if annotations is not None:
        extra["annotations"] = dict(annotations)
    obj: dict[str, Any] = {
        "apiVersion": "gyre.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": metadata(name, generation=generation, **extra),
        "spec": copy.deepcopy(spec),
    }
    if status is not None:
        obj["status"] = copy.deepcopy(status)
    return obj


def _default_container(container: dict[str, Any]) -> None:
    container.setdefault("imagePullPolicy", "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("resources", {})
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe in container:
            container[probe].setdefault("successThreshold", 1)
            container[probe].get("httpGet", {}).setdefault("scheme", "HTTP")


def with_server_defaults(manifest: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    """An applied manifest as the API server stores it: the fields Gyre sets, plus the
    defaults and bookkeeping Gyre never sets (they are no reason to apply again)."""
    obj = copy.deepcopy(manifest)
    meta = obj["metadata"]
    meta.setdefault("uid", f"uid-{meta['name']}")
    meta["generation"] = generation
    meta.setdefault("resourceVersion", "4321")
    meta.setdefault("creationTimestamp", CREATED)
    meta.setdefault("managedFields", [{"manager": "gyre", "operation": "Apply"}])
    spec = obj["spec"]
    if obj["kind"] == "Deployment":
        meta.setdefault("annotations", {})["deployment.kubernetes.io/revision"] = str(generation)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("revisionHistoryLimit", 10)
        pod = spec["template"]["spec"]
        pod.setdefault("dnsPolicy", "ClusterFirst")
        pod.setdefault("schedulerName", "default-scheduler")
        pod.setdefault("securityContext", {})
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            _default_container(container)
    elif obj["kind"] == "Service":
        spec.setdefault("clusterIP", "10.96.0.17")
        spec.setdefault("clusterIPs", ["10.96.0.17"])
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("internalTrafficPolicy", "Cluster")
    elif obj["kind"] == "HTTPRoute":
        for parent in spec.get("parentRefs", []):
            parent.setdefault("group", "gateway.networking.k8s.io")
            parent.setdefault("kind", "Gateway")
        for rule in spec.get("rules", []):
            rule.setdefault("matches", [{"path": {"type": "PathPrefix", "value": "/"}}])
            for backend in rule.get("backendRefs", []):
                backend.setdefault("group", "")
                backend.setdefault("kind", "Service")
    return obj
