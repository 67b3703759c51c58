"""autoscaling/v1 HorizontalPodAutoscalers: a view of the stored autoscaling/v2 objects,
converted as kube-apiserver converts them.

v1 has one metric field, `targetCPUUtilizationPercentage` (v2's Resource cpu Utilization
metric); the other metrics, the behavior, the current metrics and the conditions travel in
`autoscaling.alpha.kubernetes.io/*` annotations, metrics in v1's MetricSpec/MetricStatus form.
Each function takes whole or partial objects (apply configurations, status patches) and builds
a new top level, sharing the values it leaves unchanged."""

from __future__ import annotations

import json
from typing import Any

API_V1 = "autoscaling/v1"
API_V2 = "autoscaling/v2"
_ANNOTATION = "autoscaling.alpha.kubernetes.io/"
METRICS_ANNOTATION = _ANNOTATION + "metrics"
CURRENT_METRICS_ANNOTATION = _ANNOTATION + "current-metrics"
BEHAVIOR_ANNOTATION = _ANNOTATION + "behavior"
CONDITIONS_ANNOTATION = _ANNOTATION + "conditions"
_KEPT_SPEC = ("scaleTargetRef", "minReplicas", "maxReplicas")
_KEPT_STATUS = ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas")

# (v2 path, v1 name) of each metric source's fields, in specs and in statuses.
_Fields = dict[str, tuple[tuple[str, str], ...]]
_RESOURCE_SPEC = (
    ("name", "name"),
    ("target.averageUtilization", "targetAverageUtilization"),
    ("target.averageValue", "targetAverageValue"),
)
_SPEC_FIELDS: _Fields = {
    "resource": _RESOURCE_SPEC,
    "containerResource": (*_RESOURCE_SPEC, ("container", "container")),
    "pods": (
        ("metric.name", "metricName"),
        ("metric.selector", "selector"),
        ("target.averageValue", "targetAverageValue"),
    ),
    "object": (
        ("describedObject", "target"),
        ("metric.name", "metricName"),
        ("metric.selector", "selector"),
        ("target.value", "targetValue"),
        ("target.averageValue", "averageValue"),
    ),
    "external": (
        ("metric.name", "metricName"),
        ("metric.selector", "metricSelector"),
        ("target.value", "targetValue"),
        ("target.averageValue", "targetAverageValue"),
    ),
}
_RESOURCE_STATUS = (
    ("name", "name"),
    ("current.averageUtilization", "currentAverageUtilization"),
    ("current.averageValue", "currentAverageValue"),
)
_STATUS_FIELDS: _Fields = {
    "resource": _RESOURCE_STATUS,
    "containerResource": (*_RESOURCE_STATUS, ("container", "container")),
    "pods": (
        ("metric.name", "metricName"),
        ("metric.selector", "selector"),
        ("current.averageValue", "currentAverageValue"),
    ),
    "object": (
        ("describedObject", "target"),
        ("metric.name", "metricName"),
        ("metric.selector", "selector"),
        ("current.value", "currentValue"),
        ("current.averageValue", "averageValue"),
    ),
    "external": (
        ("metric.name", "metricName"),
        ("metric.selector", "metricSelector"),
        ("current.value", "currentValue"),
        ("current.averageValue", "currentAverageValue"),
    ),
}


def hpa_to_v1(obj: dict[str, Any]) -> dict[str, Any]:
    """A stored (v2) HorizontalPodAutoscaler as autoscaling/v1 shows it."""
    view = {**obj, "apiVersion": API_V1} if "apiVersion" in obj else dict(obj)
    annotations: dict[str, Any] = {}
    spec, status = obj.get("spec"), obj.get("status")
    if isinstance(spec, dict):
        cpu, others = _split_cpu(spec.get("metrics"), "target")
        view["spec"] = {key: spec[key] for key in _KEPT_SPEC if key in spec}
        if cpu is not None:
            view["spec"]["targetCPUUtilizationPercentage"] = cpu
        if others:
            annotations[METRICS_ANNOTATION] = _encode([_to_v1(m, _SPEC_FIELDS) for m in others])
        if spec.get("behavior"):
            annotations[BEHAVIOR_ANNOTATION] = _encode(spec["behavior"])
    if isinstance(status, dict):
        cpu, others = _split_cpu(status.get("currentMetrics"), "current")
        view["status"] = {key: status[key] for key in _KEPT_STATUS if key in status}
        if cpu is not None:
            view["status"]["currentCPUUtilizationPercentage"] = cpu
        if others:
            current = [_to_v1(m, _STATUS_FIELDS) for m in others]
            annotations[CURRENT_METRICS_ANNOTATION] = _encode(current)
        if status.get("conditions"):
            annotations[CONDITIONS_ANNOTATION] = _encode(status["conditions"])
    if annotations and isinstance(obj.get("metadata"), dict):
        metadata = obj["metadata"]
        view["metadata"] = {
            **metadata,
            "annotations": {**(metadata.get("annotations") or {}), **annotations},
        }
    return view


def hpa_from_v1(view: dict[str, Any]) -> dict[str, Any]:
    """An autoscaling/v1 HorizontalPodAutoscaler in its stored (v2) form."""
    obj = {**view, "apiVersion": API_V2} if "apiVersion" in view else dict(view)
    metadata = view.get("metadata")
    annotations = dict((metadata.get("annotations") or {}) if isinstance(metadata, dict) else {})
    carried = {
        name: _decode(annotations.pop(name, None))
        for name in (
            METRICS_ANNOTATION,
            BEHAVIOR_ANNOTATION,
            CURRENT_METRICS_ANNOTATION,
            CONDITIONS_ANNOTATION,
        )
    }
    if isinstance(metadata, dict) and "annotations" in metadata:
        obj["metadata"] = {key: value for key, value in metadata.items() if key != "annotations"}
        if annotations:
            obj["metadata"]["annotations"] = annotations
    spec, status = view.get("spec"), view.get("status")
    if isinstance(spec, dict):
        obj["spec"] = {key: spec[key] for key in _KEPT_SPEC if key in spec}
        metrics = _from_v1_list(carried[METRICS_ANNOTATION], _SPEC_FIELDS, "target")
        if spec.get("targetCPUUtilizationPercentage") is not None:
            metrics.append(_cpu_metric("target", spec["targetCPUUtilizationPercentage"]))
        if metrics:
            obj["spec"]["metrics"] = metrics
        if isinstance(carried[BEHAVIOR_ANNOTATION], dict):
            obj["spec"]["behavior"] = carried[BEHAVIOR_ANNOTATION]
    if isinstance(status, dict):
        obj["status"] = {key: status[key] for key in _KEPT_STATUS if key in status}
        current = _from_v1_list(carried[CURRENT_METRICS_ANNOTATION], _STATUS_FIELDS, "current")
        if status.get("currentCPUUtilizationPercentage") is not None:
            current.append(_cpu_metric("current", status["currentCPUUtilizationPercentage"]))
        if current:
            obj["status"]["currentMetrics"] = current
        if isinstance(carried[CONDITIONS_ANNOTATION], list):
            obj["status"]["conditions"] = carried[CONDITIONS_ANNOTATION]
    return obj


def _split_cpu(metrics: Any, member: str) -> tuple[int | None, list[dict[str, Any]]]:
    """The first cpu Utilization of v2 metrics (or metric statuses), and the other metrics."""
    cpu: int | None = None
    others: list[dict[str, Any]] = []
    for metric in metrics if isinstance(metrics, list) else []:
        if not isinstance(metric, dict):
            continue
        resource = metric.get("resource") or {}
        utilization = (resource.get(member) or {}).get("averageUtilization")
        is_cpu = metric.get("type") == "Resource" and resource.get("name") == "cpu"
        if cpu is None and is_cpu and utilization is not None:
            cpu = utilization
        else:
            others.append(metric)
    return cpu, others


def _cpu_metric(member: str, utilization: Any) -> dict[str, Any]:
    """v2's Resource cpu Utilization metric (`target`) or metric status (`current`)."""
    value: dict[str, Any] = {"averageUtilization": utilization}
    if member == "target":
        value = {"type": "Utilization", **value}
    return {"type": "Resource", "resource": {"name": "cpu", member: value}}


def _source_key(metric: dict[str, Any]) -> str:
    """The member holding a metric's source: `Pods` -> `pods`, `ContainerResource` ->
    `containerResource`."""
    kind = str(metric.get("type") or "")
    return kind[:1].lower() + kind[1:]


def _to_v1(metric: dict[str, Any], fields: _Fields) -> dict[str, Any]:
    """A v2 metric (or metric status) in v1's form."""
    key = _source_key(metric)
    source = metric.get(key) or {}
    converted: dict[str, Any] = {}
    for path, name in fields.get(key, ()):
        value = _at(source, path)
        if value is not None:
            converted[name] = value
    return {"type": metric.get("type"), key: converted}


def _from_v1_list(metrics: Any, fields: _Fields, member: str) -> list[dict[str, Any]]:
    """v1 metrics (or metric statuses) of an annotation in v2's form."""
    return [
        _from_v1(metric, fields, member)
        for metric in (metrics if isinstance(metrics, list) else [])
        if isinstance(metric, dict)
    ]


def _from_v1(metric: dict[str, Any], fields: _Fields, member: str) -> dict[str, Any]:
    """A v1 metric (or metric status) in v2's form; a target's type is what its value says."""
    key = _source_key(metric)
    given = metric.get(key) or {}
    source: dict[str, Any] = {}
    for path, name in fields.get(key, ()):
        if given.get(name) is not None:
            _put(source, path, given[name])
    if member == "target":
        target = source.setdefault("target", {})
        target["type"] = (
            "Utilization"
            if "averageUtilization" in target
            else "AverageValue"
            if "averageValue" in target
            else "Value"
        )
    return {"type": metric.get("type"), key: source}


def _at(obj: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, if there is one."""
    current: Any = obj
    for key in path.split("."):
        current = current.get(key) if isinstance(current, dict) else None
    return current


def _put(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dotted path, making the objects on the way."""
    *parents, last = path.split(".")
    for key in parents:
        obj = obj.setdefault(key, {})
    obj[last] = value


def _encode(value: Any) -> str:
    """An annotation's JSON, compact as Go's encoding/json writes it."""
    return json.dumps(value, separators=(",", ":"))


def _decode(text: Any) -> Any:
    """An annotation's JSON; None when it is missing or not JSON (the conversion ignores it)."""
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
