"""The HorizontalPodAutoscaler controller (autoscaling/v2), as kube-controller-manager runs it.

Every sync period each autoscaler reads its target's `scale` subresource, the resource metrics
of the pods its selector selects (from the metrics API's provider, the kubelet's samples) and
proposes desiredReplicas = ceil(currentReplicas * current / target) outside a tolerance of 0.1,
with the replica calculator's handling of unready pods and pods without metrics; the proposal
is stabilized and rate limited (the legacy rules without `behavior`, its policies with it),
clamped to [minReplicas, maxReplicas], and written through the `scale` subresource. Status,
conditions and events use the real controller's reasons and messages.

Resource and ContainerResource metrics (cpu, memory; Utilization or AverageValue) are
computed. Pods, Object and External metrics fail as they do on a cluster without the custom
and external metrics APIs: ScalingActive False with the controller's reason for that type.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gyre_local.apiserver.metrics import MetricsProvider
from gyre_local.clock import now_rfc3339, parse_rfc3339
from gyre_local.controllers.events import EventRecorder
from gyre_local.controllers.objects import is_deleting
from gyre_local.controllers.reconciler import Controller, Key
from gyre_local.quantities import decimal_quantity, parse_quantity
from gyre_local.store.store import ApiError, Store

SYNC_PERIOD = 15.0
TOLERANCE = 0.1
DOWNSCALE_STABILIZATION_SECONDS = 300
# Within this time from a pod's start, cpu samples taken before its readiness settled are not
# trusted; after it, only pods that never turned ready within the first 30 s are unready.
CPU_INITIALIZATION_SECONDS = 300.0
INITIAL_READINESS_DELAY_SECONDS = 30.0
_SCALE_UP_RULES: dict[str, Any] = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
_SCALE_DOWN_RULES: dict[str, Any] = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}
# What fetching a custom or external metric answers on a cluster without those APIs.
_CUSTOM_API = (
    "unable to fetch metrics from custom metrics API: "
    "no custom metrics API (custom.metrics.k8s.io) registered"
)
_EXTERNAL_API = (
    "unable to fetch metrics from external metrics API: "
    "no external metrics API (external.metrics.k8s.io) registered"
)
_UP_STABILIZED = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
)
_DOWN_STABILIZED = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent "
    "recommendation",
)


class MetricError(Exception):
    """A metric that cannot be computed; reason is the ScalingActive condition's."""

    def __init__(self, reason: str, message: str, summary: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.summary = summary  # the FailedComputeMetricsReplicas form


# ---- the replica calculator (pure) ----


@dataclass(frozen=True)
class PodGroups:
    """A target's pods for one resource metric, as the replica calculator groups them: usage
    (milli-units) of ready pods with metrics, pods not yet ready, pods without metrics."""

    usage: Mapping[str, int]
    unready: Collection[str] = ()
    missing: Collection[str] = ()


def usage_ratio(
    usage: Mapping[str, int], target: int, requests: Mapping[str, int] | None
) -> tuple[float, int]:
    """(usage / target, current value): utilization percent of the pods' requests when
    requests are given, else the average usage per pod (milli-units)."""
    if requests is None:
        average = sum(usage.values()) // len(usage)
        return average / target, average
    requested = sum(requests[pod] for pod in usage)
    utilization = sum(usage.values()) * 100 // requested
    return utilization / target, utilization


def proposed_replicas(
    current_replicas: int,
    pods: PodGroups,
    target: int,
    requests: Mapping[str, int] | None = None,
    tolerance: float = TOLERANCE,
) -> tuple[int, int]:
    """(replicas, current value) for a resource metric: ceil(ready pods * usage / target),
    unchanged within the tolerance; pods without metrics count as at target when scaling down
    and as idle when scaling up, unready pods as idle when scaling up, and a proposal those
    assumptions turn around keeps the current replicas."""
    if not pods.usage:
        raise ValueError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, current = usage_ratio(pods.usage, target, requests)
    scale_up_with_unready = bool(pods.unready) and ratio > 1.0
    if not scale_up_with_unready and not pods.missing:
        if abs(1.0 - ratio) <= tolerance:
            return current_replicas, current
        return math.ceil(ratio * len(pods.usage)), current
    filled = dict(pods.usage)
    if ratio < 1.0:
        filled |= {pod: requests[pod] if requests else target for pod in pods.missing}
    elif ratio > 1.0:
        filled |= dict.fromkeys(pods.missing, 0)
    if scale_up_with_unready:
        filled |= dict.fromkeys(pods.unready, 0)
    new_ratio, _ = usage_ratio(filled, target, requests)
    if abs(1.0 - new_ratio) <= tolerance or (ratio - 1.0) * (new_ratio - 1.0) < 0:
        return current_replicas, current
    replicas = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and replicas > current_replicas) or (
        new_ratio > 1.0 and replicas < current_replicas
    ):
        return current_replicas, current
    return replicas, current


# ---- stabilization and rate limits (pure) ----


@dataclass(frozen=True)
class Recommendation:
    """A replica count proposed at a monotonic time."""

    at: float
    replicas: int


@dataclass(frozen=True)
class ScaleEvent:
    """A change of replicas made at a monotonic time."""

    at: float
    change: int


@dataclass(frozen=True)
class Limited:
    """A replica count and why it is (or is not) limited: the ScalingLimited reason."""

    replicas: int
    reason: str
    message: str


def stabilized_legacy(
    recommendations: Iterable[Recommendation], desired: int, now: float, window: float
) -> int:
    """Without `behavior`: the highest recommendation of the downscale window."""
    return max([desired, *(r.replicas for r in recommendations if r.at >= now - window)])


def stabilized(
    recommendations: Iterable[Recommendation],
    current: int,
    desired: int,
    now: float,
    up_window: float,
    down_window: float,
) -> int:
    """With `behavior`: the current count moved only as far as every recommendation of each
    direction's window agrees (lowest of the scale-up window, highest of the scale-down one)."""
    kept = list(recommendations)
    up = min([desired, *(r.replicas for r in kept if r.at > now - up_window)])
    down = max([desired, *(r.replicas for r in kept if r.at > now - down_window)])
    return min(max(current, up), down)


def _clamp(desired: int, minimum: int, maximum: int, limit: int, limit_reason: str) -> Limited:
    """desired within [minimum, maximum] and under a rate limit (the maximum when lower)."""
    if desired < minimum:
        return Limited(
            minimum,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    if maximum > limit:
        cap = Limited(
            limit,
            limit_reason,
            "the desired replica count is increasing faster than the maximum scale rate",
        )
    else:
        cap = Limited(
            maximum,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    if desired > cap.replicas:
        return cap
    return Limited(
        desired, "DesiredWithinRange", "the desired count is within the acceptable range"
    )


def limited_legacy(current: int, desired: int, minimum: int, maximum: int) -> Limited:
    """Without `behavior`: at most double (at least 4) per sync, within the bounds."""
    return _clamp(desired, minimum, maximum, max(2 * current, 4), "ScaleUpLimit")


def _changed_within(events: Iterable[ScaleEvent], period: float, now: float) -> int:
    return sum(e.change for e in events if e.at > now - period)


def _policy_limit(
    rules: Mapping[str, Any],
    current: int,
    ups: Sequence[ScaleEvent],
    downs: Sequence[ScaleEvent],
    now: float,
    *,
    up: bool,
) -> int:
    """The farthest one direction's policies let the replicas go from the count at the start
    of each policy's period (selectPolicy Max: the most permissive, Min: the least)."""
    if rules.get("selectPolicy") == "Disabled":
        return current
    proposals = []
    for policy in rules.get("policies") or []:
        period = float(policy["periodSeconds"])
        start = current - _changed_within(ups, period, now) + _changed_within(downs, period, now)
        value = int(policy["value"])
        if policy["type"] == "Pods":
            proposals.append(start + value if up else start - value)
        elif up:
            proposals.append(math.ceil(start * (1 + value / 100)))
        else:
            proposals.append(int(start * (1 - value / 100)))
    most_permissive = (rules.get("selectPolicy") or "Max") == "Max"
    return (max if most_permissive == up else min)(proposals, default=current)


def limited_by_behavior(
    behavior: Mapping[str, Any],
    current: int,
    desired: int,
    minimum: int,
    maximum: int,
    ups: Sequence[ScaleEvent],
    downs: Sequence[ScaleEvent],
    now: float,
) -> Limited:
    """With `behavior`: the scaling policies' rate limits of the direction, within the bounds."""
    if desired > current:
        limit = max(_policy_limit(behavior["scaleUp"], current, ups, downs, now, up=True), current)
        return _clamp(desired, minimum, maximum, limit, "ScaleUpLimit")
    if desired < current:
        limit = min(
            _policy_limit(behavior["scaleDown"], current, ups, downs, now, up=False), current
        )
        if minimum < limit:
            if desired < limit:
                return Limited(
                    limit,
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                )
        elif desired < minimum:
            return Limited(
                minimum,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
    return Limited(
        desired, "DesiredWithinRange", "the desired count is within the acceptable range"
    )


def with_default_rules(behavior: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A behavior with kube-apiserver's defaults for the rules it leaves out (None stays None:
    the legacy rules apply), and the controller's downscale window when it names none."""
    if behavior is None:
        return None
    up = {**_SCALE_UP_RULES, **(behavior.get("scaleUp") or {})}
    down = {**_SCALE_DOWN_RULES, **(behavior.get("scaleDown") or {})}
    down.setdefault("stabilizationWindowSeconds", DOWNSCALE_STABILIZATION_SECONDS)
    return {"scaleUp": up, "scaleDown": down}


# ---- the controller ----


@dataclass
class _History:
    """What the controller remembers of one autoscaler between syncs."""

    last_sync: float
    recommendations: list[Recommendation] = field(default_factory=list)
    ups: list[ScaleEvent] = field(default_factory=list)
    downs: list[ScaleEvent] = field(default_factory=list)


@dataclass
class _Sync:
    """One sync's findings: conditions set so far, metric statuses, the chosen metric."""

    conditions: list[dict[str, Any]]
    statuses: list[dict[str, Any]] = field(default_factory=list)


class HorizontalPodAutoscalerController(Controller):
    """Scales Deployments, ReplicaSets, StatefulSets (and custom resources with a scale
    subresource) to the resource usage of their pods."""

    resource = ("autoscaling", "horizontalpodautoscalers")

    def __init__(
        self, store: Store, metrics: MetricsProvider, *, sync_period: float = SYNC_PERIOD
    ) -> None:
        super().__init__(store)
        self.metrics = metrics
        self.sync_period = sync_period
        self.events = EventRecorder(store, "horizontal-pod-autoscaler")
        self._history: dict[Key, _History] = {}

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Every sync period (the controller's queue holds each key that long, whatever
        happens meanwhile): compute and apply the autoscaler's replica count."""
        hpa = self.primary(namespace, name)
        if hpa is None or is_deleting(hpa):
            self._history.pop((namespace, name), None)
            return None
        now = time.monotonic()
        history = self._history.setdefault((namespace, name), _History(last_sync=now))
        wait = history.last_sync + self.sync_period - now
        if wait > 0:
            return wait
        history.last_sync = now
        self._sync(hpa, history, now)
        return self.sync_period

    def _sync(self, hpa: dict[str, Any], history: _History, now: float) -> None:
        """Read the target's scale, decide its replicas, rescale it, write the status."""
        status = hpa.get("status") or {}
        sync = _Sync(conditions=list(status.get("conditions") or []))
        target = self._read_scale(hpa, sync)
        if target is None:
            self._write_status(hpa, {**status, "conditions": sync.conditions})
            return
        group, plural, scale = target
        current = int((scale.get("spec") or {}).get("replicas", 0))
        decision = self._decide(hpa, scale, history, sync, current, now)
        if decision is None:
            failed = {"currentReplicas": current, "currentMetrics": sync.statuses}
            self._write_status(hpa, {**status, **failed, "conditions": sync.conditions})
            return
        desired, reason = decision
        new_status: dict[str, Any] = {"currentReplicas": current, "desiredReplicas": desired}
        if sync.statuses:
            new_status["currentMetrics"] = sync.statuses
        if desired != current:
            self._rescale(hpa, group, plural, scale, desired, reason, sync, history, current, now)
            new_status["lastScaleTime"] = now_rfc3339()
        elif status.get("lastScaleTime"):
            new_status["lastScaleTime"] = status["lastScaleTime"]
        self._write_status(hpa, {**new_status, "conditions": sync.conditions})

    def _read_scale(
        self, hpa: dict[str, Any], sync: _Sync
    ) -> tuple[str, str, dict[str, Any]] | None:
        """(group, plural, Scale) of the autoscaler's target; None (AbleToScale False, with
        a Warning event) when it cannot be read."""
        reference = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        try:
            group, plural = self._scale_resource(reference)
            namespace, name = hpa["metadata"]["namespace"], reference.get("name", "")
            scale = self.store.get(group, plural, namespace, name, subresource="scale")
        except ApiError as error:
            self.events.warning(hpa, "FailedGetScale", error.message)
            self._condition(
                sync,
                "AbleToScale",
                "False",
                "FailedGetScale",
                f"the HPA controller was unable to get the target's current scale: {error.message}",
            )
            return None
        self._condition(
            sync,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        return group, plural, scale

    def _decide(
        self,
        hpa: dict[str, Any],
        scale: dict[str, Any],
        history: _History,
        sync: _Sync,
        current: int,
        now: float,
    ) -> tuple[int, str] | None:
        """(desired replicas, reason for a change); None when the metrics allow no decision."""
        spec = hpa.get("spec") or {}
        minimum, maximum = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        if current == 0 and minimum != 0:
            self._condition(
                sync,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
            return current, ""
        if current > maximum:
            return maximum, "Current number of replicas above Spec.MaxReplicas"
        if current < minimum:
            return minimum, "Current number of replicas below Spec.MinReplicas"
        proposal = self._metric_replicas(hpa, scale, current, sync)
        if proposal is None:
            return None
        desired, metric_name = proposal
        reason = ""
        if desired > current:
            reason = f"{metric_name} above target"
        elif desired < current:
            reason = "All metrics below target"
        return self._normalized(spec, history, sync, current, desired, now), reason

    def _scale_resource(self, reference: Mapping[str, Any]) -> tuple[str, str]:
        """(group, plural) of a scaleTargetRef's kind with a scale subresource."""
        api_version = str(reference.get("apiVersion") or "")
        group = api_version.split("/")[0] if "/" in api_version else ""
        kind = reference.get("kind", "")
        for rtype in self.store.resource_types():
            if rtype.group == group and rtype.kind == kind and "scale" in rtype.subresources:
                return rtype.group, rtype.plural
        raise ApiError(404, "NotFound", f'no matches for kind "{kind}" in group "{group}"')

    def _metric_replicas(
        self, hpa: dict[str, Any], scale: dict[str, Any], current: int, sync: _Sync
    ) -> tuple[int, str] | None:
        """(replicas, name of the metric proposing them) as the highest proposal of the valid
        metrics; None (with ScalingActive False) when none is valid or an invalid one could
        mean fewer replicas."""
        specs = (hpa.get("spec") or {}).get("metrics") or []
        selector = (scale.get("status") or {}).get("selector") or ""
        best: tuple[int, str] | None = None
        errors: list[MetricError] = []
        for metric in specs:
            try:
                if not selector:
                    raise MetricError(
                        "InvalidSelector",
                        "the HPA target's scale is missing a selector",
                        "selector is required",
                    )
                replicas, name, metric_status = self._resource_metric(
                    hpa, selector, metric, current
                )
            except MetricError as error:
                errors.append(error)
                sync.statuses.append({"type": ""})
                self.events.warning(hpa, error.reason, str(error))
                self._condition(
                    sync,
                    "ScalingActive",
                    "False",
                    error.reason,
                    f"the HPA was unable to compute the replica count: {error}",
                )
                continue
            sync.statuses.append(metric_status)
            if best is None or replicas > best[0]:
                best = (replicas, name)
        if errors and (best is None or best[0] < current):
            self.events.warning(
                hpa,
                "FailedComputeMetricsReplicas",
                f"invalid metrics ({len(errors)} invalid out of {len(specs)}), "
                f"first error is: {errors[0].summary}",
            )
            return None
        if best is not None:
            self._condition(
                sync,
                "ScalingActive",
                "True",
                "ValidMetricFound",
                f"the HPA was able to successfully calculate a replica count from {best[1]}",
            )
        return best

    def _resource_metric(
        self, hpa: dict[str, Any], selector: str, metric: Mapping[str, Any], current: int
    ) -> tuple[int, str, dict[str, Any]]:
        """(replicas, metric name, MetricStatus) of one Resource or ContainerResource metric
        (the usage and requests of one container of each pod)."""
        kind = metric.get("type", "")
        if kind not in ("Resource", "ContainerResource"):
            raise _unsupported(kind, metric)
        field_name = kind[:1].lower() + kind[1:]
        source = metric.get(field_name) or {}
        resource, target = source.get("name", ""), source.get("target") or {}
        container = source.get("container") if kind == "ContainerResource" else None
        scope = "resource" if container is None else "container resource"
        pods, _version = self.store.list(
            "", "pods", hpa["metadata"]["namespace"], label_selector=selector
        )
        utilization = target.get("type") == "Utilization"
        try:
            groups = self._group_pods(pods, resource, container)
            if utilization:
                name = f"{resource} {scope} utilization (percentage of request)"
                requests = _requests(pods, resource, container)
                percent = int(target.get("averageUtilization", 0))
                replicas, value = proposed_replicas(current, groups, percent, requests)
                average = sum(groups.usage.values()) // len(groups.usage)
                current_value = {"averageUtilization": value, "averageValue": _milli(average)}
            else:
                name = f"{resource} {scope}"
                goal = round(parse_quantity(target.get("averageValue")) * 1000)
                replicas, value = proposed_replicas(current, groups, goal)
                current_value = {"averageValue": _milli(value)}
        except ValueError as error:
            measure = "utilization" if utilization else "usage"
            summary = f"failed to get {resource} {measure}: {error}"
            reason = f"FailedGet{kind}Metric"
            raise MetricError(reason, str(error), summary) from error
        named = (
            {"name": resource} if container is None else {"name": resource, "container": container}
        )
        return replicas, name, {"type": kind, field_name: {**named, "current": current_value}}

    def _group_pods(
        self, pods: Sequence[dict[str, Any]], resource: str, container: str | None
    ) -> PodGroups:
        """The replica calculator's grouping of pods: ignored (deleting, failed), unready
        (pending; for cpu, not ready or measured before its readiness settled), missing
        metrics, and ready with usage in milli-units (of one container when named)."""
        sampled = {
            pod["metadata"]["name"]: self.metrics.pod_usage(pod["metadata"]["uid"]) for pod in pods
        }
        if not any(sampled.values()):
            raise ValueError(
                f"unable to get metrics for resource {resource}: "
                "no metrics returned from resource metrics API"
            )
        usage: dict[str, int] = {}
        unready: list[str] = []
        missing: list[str] = []
        for pod in pods:
            meta, phase = pod["metadata"], (pod.get("status") or {}).get("phase")
            name = meta["name"]
            if is_deleting(pod) or phase == "Failed":
                continue
            if phase == "Pending":
                unready.append(name)
                continue
            containers = dict(sampled[name])
            if not containers:
                missing.append(name)
                continue
            if container is not None:
                if container not in containers:
                    raise ValueError(
                        f"failed to get container metrics: container {container} not present "
                        f"in metrics for pod {meta['namespace']}/{name}"
                    )
                containers = {container: containers[container]}
            if resource == "cpu" and _cpu_unready(pod, containers.values()):
                unready.append(name)
                continue
            if resource == "cpu":
                usage[name] = sum(
                    math.ceil(u.cpu_nanocores / 1_000_000) for u in containers.values()
                )
            else:
                usage[name] = sum(u.memory_bytes * 1000 for u in containers.values())
        return PodGroups(usage, unready, missing)

    def _normalized(
        self,
        spec: Mapping[str, Any],
        history: _History,
        sync: _Sync,
        current: int,
        desired: int,
        now: float,
    ) -> int:
        """The metric proposal stabilized, rate limited and within the bounds (AbleToScale
        and ScalingLimited say how)."""
        minimum, maximum = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        behavior = with_default_rules(spec.get("behavior"))
        if behavior is None:
            window = float(DOWNSCALE_STABILIZATION_SECONDS)
            recommendation = stabilized_legacy(history.recommendations, desired, now, window)
            reason, message = _DOWN_STABILIZED
            oldest = window
        else:
            up_window = float(behavior["scaleUp"]["stabilizationWindowSeconds"])
            down_window = float(behavior["scaleDown"]["stabilizationWindowSeconds"])
            recommendation = stabilized(
                history.recommendations, current, desired, now, up_window, down_window
            )
            if desired >= current:
                reason, message = _UP_STABILIZED
            else:
                reason, message = _DOWN_STABILIZED
            oldest = max(up_window, down_window)
        history.recommendations = [r for r in history.recommendations if r.at > now - oldest]
        history.recommendations.append(Recommendation(now, desired))
        if recommendation != desired:
            self._condition(sync, "AbleToScale", "True", reason, message)
        else:
            self._condition(
                sync,
                "AbleToScale",
                "True",
                "ReadyForNewScale",
                "recommended size matches current size",
            )
        if behavior is None:
            limited = limited_legacy(current, recommendation, minimum, maximum)
        else:
            limited = limited_by_behavior(
                behavior, current, recommendation, minimum, maximum, history.ups, history.downs, now
            )
        self._condition(
            sync,
            "ScalingLimited",
            "False" if limited.replicas == recommendation else "True",
            limited.reason,
            limited.message,
        )
        return limited.replicas

    def _rescale(
        self,
        hpa: dict[str, Any],
        group: str,
        plural: str,
        scale: dict[str, Any],
        desired: int,
        reason: str,
        sync: _Sync,
        history: _History,
        current: int,
        now: float,
    ) -> None:
        """Write the new replica count through the scale subresource, with its event."""
        try:
            self.store.replace(
                group,
                plural,
                scale["metadata"]["namespace"],
                scale["metadata"]["name"],
                {**scale, "spec": {"replicas": desired}},
                subresource="scale",
            )
        except ApiError as error:
            self.events.warning(
                hpa,
                "FailedRescale",
                f"New size: {desired}; reason: {reason}; error: {error.message}",
            )
            self._condition(
                sync,
                "AbleToScale",
                "False",
                "FailedUpdateScale",
                f"the HPA controller was unable to update the target scale: {error.message}",
            )
            raise
        self._condition(
            sync,
            "AbleToScale",
            "True",
            "SucceededRescale",
            f"the HPA controller was able to update the target scale to {desired}",
        )
        self.events.normal(hpa, "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
        events = history.ups if desired > current else history.downs
        events.append(ScaleEvent(now, abs(desired - current)))

    @staticmethod
    def _condition(sync: _Sync, kind: str, status: str, reason: str, message: str) -> None:
        """Set a condition, its transition time kept while its status holds."""
        previous = next((c for c in sync.conditions if c.get("type") == kind), None)
        condition = {
            "type": kind,
            "status": status,
            "lastTransitionTime": now_rfc3339(),
            "reason": reason,
            "message": message,
        }
        if previous is not None and previous.get("status") == status:
            condition["lastTransitionTime"] = previous.get(
                "lastTransitionTime", condition["lastTransitionTime"]
            )
        if previous is None:
            sync.conditions.append(condition)
        else:
            sync.conditions = [condition if c is previous else c for c in sync.conditions]

    def _write_status(self, hpa: dict[str, Any], status: dict[str, Any]) -> None:
        """Write the autoscaler's status when it changed."""
        if status == (hpa.get("status") or {}):
            return
        meta = hpa["metadata"]
        self.store.replace(
            "autoscaling",
            "horizontalpodautoscalers",
            meta["namespace"],
            meta["name"],
            {**hpa, "status": status},
            subresource="status",
        )


def _unsupported(kind: str, metric: Mapping[str, Any]) -> MetricError:
    """The failure of a metric type served by no metrics API of this cluster."""
    source = metric.get(kind[:1].lower() + kind[1:]) or {}
    metric_name = (source.get("metric") or {}).get("name", "")
    if kind == "Pods":
        message = f"unable to get metric {metric_name}: {_CUSTOM_API}"
        return MetricError(
            "FailedGetPodsMetric", message, f"failed to get pods metric value: {message}"
        )
    if kind == "Object":
        target = source.get("describedObject") or {}
        described = f"{target.get('kind', '')} on {target.get('name', '')}"
        message = f"unable to get metric {metric_name}: {described}/{_CUSTOM_API}"
        return MetricError(
            "FailedGetObjectMetric", message, f"failed to get object metric value: {message}"
        )
    if kind == "External":
        message = f"unable to get external metric {metric_name}: {_EXTERNAL_API}"
        return MetricError(
            "FailedGetExternalMetric", message, f"failed to get external metric value: {message}"
        )
    message = f"unknown metric source type {kind!r}"
    return MetricError("InvalidMetricSourceType", message, message)


def _requests(
    pods: Sequence[dict[str, Any]], resource: str, only: str | None = None
) -> dict[str, int]:
    """{pod: sum of its containers' (or the one named container's) requests of a resource, in
    milli-units}; raises ValueError naming the first container without a request."""
    requests: dict[str, int] = {}
    for pod in pods:
        total = 0
        for container in (pod.get("spec") or {}).get("containers") or []:
            if only is not None and container["name"] != only:
                continue
            value = ((container.get("resources") or {}).get("requests") or {}).get(resource)
            if value is None:
                raise ValueError(
                    f"missing request for {resource} in container {container['name']} "
                    f"of Pod {pod['metadata']['name']}"
                )
            total += math.ceil(parse_quantity(value) * 1000)
        requests[pod["metadata"]["name"]] = total
    return requests


def _cpu_unready(pod: Mapping[str, Any], usages: Iterable[Any]) -> bool:
    """Whether a pod's cpu sample is not trusted yet: not ready, or (within its cpu
    initialization period) measured before it had been ready a whole window."""
    status = pod.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or not status.get("startTime"):
        return True
    started = parse_rfc3339(status["startTime"])
    transition = parse_rfc3339(ready.get("lastTransitionTime") or status["startTime"])
    usage = next(iter(usages))
    if datetime.now(UTC) < started + timedelta(seconds=CPU_INITIALIZATION_SECONDS):
        sampled = parse_rfc3339(usage.timestamp)
        measured_before_ready = sampled < transition + timedelta(seconds=usage.window_seconds)
        return ready.get("status") == "False" or measured_before_ready
    delayed = started + timedelta(seconds=INITIAL_READINESS_DELAY_SECONDS) > transition
    return ready.get("status") == "False" and delayed


def _milli(value: int) -> str:
    """A milli-unit value as a canonical decimal quantity."""
    return decimal_quantity(value * 1_000_000)
