"""The HorizontalPodAutoscaler controller: the replica calculator, stabilization and rate
limits as pure functions, and a Deployment of CPU-burning process pods scaled up."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubectl_runner import Kubectl, kubectl_runner
from kubernetes import client, watch

from gyre_local.cluster import LocalCluster, wait_for
from gyre_local.controllers.autoscalers import (
    Limited,
    PodGroups,
    Recommendation,
    ScaleEvent,
    limited_by_behavior,
    limited_legacy,
    proposed_replicas,
    stabilized,
    stabilized_legacy,
    with_default_rules,
)
from gyre_local.kubelet.state import Backoff

NS = "autoscaling"
# About 0.3 of a core (600% of a 50m request) without starving the cluster's own process.
BURN = """
import time
while True:
    busy_until = time.perf_counter() + 0.003
    while time.perf_counter() < busy_until:
        pass
    time.sleep(0.007)
"""
WITHIN = Limited(0, "DesiredWithinRange", "the desired count is within the acceptable range")


def _within(replicas: int) -> Limited:
    return Limited(replicas, WITHIN.reason, WITHIN.message)


# ---- the replica calculator ----

REQUESTS = {"a": 100, "b": 100, "c": 100, "d": 100}


@pytest.mark.parametrize(
    ("current", "groups", "target", "requests", "expected"),
    [
        # 100% of the requests against a 50% target on two pods: four.
        (2, PodGroups({"a": 100, "b": 100}), 50, REQUESTS, (4, 100)),
        # Within the tolerance (0.1): unchanged.
        (2, PodGroups({"a": 54, "b": 54}), 50, REQUESTS, (2, 54)),
        (2, PodGroups({"a": 46, "b": 46}), 50, REQUESTS, (2, 46)),
        # Just outside it: ceil(2 * 56 / 50) = 3.
        (2, PodGroups({"a": 56, "b": 56}), 50, REQUESTS, (3, 56)),
        # Scaling down: ceil(4 * 10 / 50) = 1.
        (4, PodGroups({"a": 10, "b": 10, "c": 10, "d": 10}), 50, REQUESTS, (1, 10)),
        # A pod without metrics counts as at its request when scaling down: (10+10+100)/3=40%.
        (3, PodGroups({"a": 10, "b": 10}, missing={"c"}), 50, REQUESTS, (3, 10)),
        (4, PodGroups({"a": 10, "b": 10, "c": 10}, missing={"d"}), 50, REQUESTS, (3, 10)),
        # ... and as idle when scaling up: (100+100+0)/3 = 66% -> ceil(3 * 66/50) = 4.
        (3, PodGroups({"a": 100, "b": 100}, missing={"c"}), 50, REQUESTS, (4, 100)),
        # An unready pod counts as idle when scaling up.
        (3, PodGroups({"a": 60, "b": 60}, unready={"c"}), 50, REQUESTS, (3, 60)),
        (3, PodGroups({"a": 100, "b": 100}, unready={"c"}), 50, REQUESTS, (4, 100)),
        # AverageValue (no requests): average 300m against 100m per pod.
        (2, PodGroups({"a": 200, "b": 400}), 100, None, (6, 300)),
    ],
)
def test_proposed_replicas(
    current: int,
    groups: PodGroups,
    target: int,
    requests: dict[str, int] | None,
    expected: tuple[int, int],
) -> None:
    assert proposed_replicas(current, groups, target, requests) == expected


def test_no_ready_pod_with_metrics_is_an_error() -> None:
    with pytest.raises(ValueError, match="did not receive metrics for targeted pods"):
        proposed_replicas(2, PodGroups({}, unready={"a"}), 50, REQUESTS)


# ---- stabilization and limits ----


def test_legacy_stabilization_keeps_the_highest_recommendation_of_the_window() -> None:
    recent = [Recommendation(100.0, 5), Recommendation(390.0, 3)]
    assert stabilized_legacy(recent, 2, now=400.0, window=300.0) == 5
    assert stabilized_legacy(recent, 2, now=401.0, window=300.0) == 3
    assert stabilized_legacy(recent, 2, now=1000.0, window=300.0) == 2


@pytest.mark.parametrize(
    ("current", "desired", "up_window", "down_window", "expected"),
    [
        (4, 2, 0, 300, 4),  # a higher recommendation of the down window holds the count
        (4, 2, 0, 0, 2),  # no window: the proposal
        (4, 8, 0, 300, 8),  # scaling up is not held by default
        (3, 8, 60, 300, 4),  # an up window: only as far as the lowest recent recommendation
        (4, 3, 0, 5, 4),  # the down window's 5 never raises it above the current count
    ],
)
def test_behavior_stabilization(
    current: int, desired: int, up_window: float, down_window: float, expected: int
) -> None:
    recent = [Recommendation(90.0, 5), Recommendation(99.0, 4)]
    assert stabilized(recent, current, desired, 100.0, up_window, down_window) == expected


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [
        (2, 3, _within(3)),
        (2, 9, Limited(4, "ScaleUpLimit", "")),  # at most max(2 * 2, 4) at once
        (5, 12, Limited(10, "TooManyReplicas", "")),
        (3, 0, Limited(1, "TooFewReplicas", "")),
    ],
)
def test_legacy_limits(current: int, desired: int, expected: Limited) -> None:
    limited = limited_legacy(current, desired, minimum=1, maximum=10)
    assert (limited.replicas, limited.reason) == (expected.replicas, expected.reason)


def test_legacy_limit_messages() -> None:
    assert limited_legacy(2, 9, 1, 10).message == (
        "the desired replica count is increasing faster than the maximum scale rate"
    )
    assert limited_legacy(5, 12, 1, 10).message == (
        "the desired replica count is more than the maximum replica count"
    )


DEFAULT_BEHAVIOR = with_default_rules({})


@pytest.mark.parametrize(
    ("current", "desired", "ups", "downs", "expected"),
    [
        # Default scale up: the larger of +4 pods and +100% per 15 s.
        (2, 20, [], [], (6, "ScaleUpLimit")),
        (5, 50, [], [], (10, "ScaleUpLimit")),
        # Replicas added within the period count against it: 6 were 2 at its start.
        (6, 20, [ScaleEvent(95.0, 4)], [], (6, "ScaleUpLimit")),
        (6, 20, [ScaleEvent(80.0, 4)], [], (12, "ScaleUpLimit")),
        (4, 30, [], [], (8, "ScaleUpLimit")),
        (8, 30, [], [], (16, "ScaleUpLimit")),
        (18, 30, [], [], (20, "TooManyReplicas")),
        # Default scale down: -100% per 15 s, so only the minimum limits it.
        (10, 0, [], [], (1, "TooFewReplicas")),
        (10, 3, [], [], (3, "DesiredWithinRange")),
    ],
)
def test_behavior_limits(
    current: int,
    desired: int,
    ups: list[ScaleEvent],
    downs: list[ScaleEvent],
    expected: tuple[int, str],
) -> None:
    assert DEFAULT_BEHAVIOR is not None
    limited = limited_by_behavior(DEFAULT_BEHAVIOR, current, desired, 1, 20, ups, downs, 100.0)
    assert (limited.replicas, limited.reason) == expected


def test_scale_down_policies_limit_the_rate() -> None:
    behavior = with_default_rules(
        {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    )
    assert behavior is not None
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    limited = limited_by_behavior(behavior, 5, 1, 1, 10, [], [], 100.0)
    assert (limited.replicas, limited.reason) == (4, "ScaleDownLimit")
    assert limited.message == (
        "the desired replica count is decreasing faster than the maximum scale rate"
    )
    once_down = [ScaleEvent(70.0, 1)]
    assert limited_by_behavior(behavior, 4, 1, 1, 10, [], once_down, 100.0).replicas == 4
    disabled = with_default_rules({"scaleDown": {"selectPolicy": "Disabled"}})
    assert disabled is not None
    assert limited_by_behavior(disabled, 5, 1, 1, 10, [], [], 100.0).replicas == 5


def test_no_behavior_keeps_the_legacy_rules() -> None:
    assert with_default_rules(None) is None


# ---- a Deployment scaled by its pods' CPU ----


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A process cluster sampling usage every 0.5 s and syncing autoscalers every second."""
    local = LocalCluster(
        kubelet="process",
        image_map={"local/python": sys.executable},
        restart_backoff=Backoff(0.05, 0.2),
    )
    local.kubelet.metrics_resolution = 0.5
    local.autoscaler_sync_period = 1.0
    with local:
        yield local


def _deployment() -> dict[str, Any]:
    container = {
        "name": "burn",
        "image": "local/python:3.11",
        "command": ["python", "-c", BURN],
        "resources": {"requests": {"cpu": "50m"}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "burner"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "burner"}},
            "template": {
                "metadata": {"labels": {"app": "burner"}},
                "spec": {"containers": [container]},
            },
        },
    }


def _autoscaler(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "burner"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burner"},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": metrics,
        },
    }


CPU_50 = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
}


def _first_status(
    api: client.ApiClient,
    autoscaling: client.AutoscalingV2Api,
    wanted: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """The autoscaler as the first write giving it a wanted status left it (later syncs may
    change the conditions again)."""
    stream = watch.Watch().stream(
        autoscaling.list_namespaced_horizontal_pod_autoscaler, NS, timeout_seconds=25
    )
    for event in stream:
        hpa: dict[str, Any] = api.sanitize_for_serialization(event["object"])
        if wanted(hpa.get("status") or {}):
            return hpa
    raise TimeoutError("the autoscaler never reached the wanted status")


def _conditions(hpa: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c["message"])
        for c in (hpa.get("status") or {}).get("conditions") or []
    }


def test_cpu_burning_pods_scale_their_deployment_up(cluster: LocalCluster) -> None:
    api = cluster.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    autoscaling = client.AutoscalingV2Api(api)
    core.create_namespace({"metadata": {"name": NS}})
    try:
        apps.create_namespaced_deployment(NS, _deployment())
        autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, _autoscaler([CPU_50]))

        hpa = _first_status(api, autoscaling, lambda status: status.get("desiredReplicas") == 3)
        assert apps.read_namespaced_deployment("burner", NS).spec.replicas == 3
        status = hpa["status"]
        assert status["currentReplicas"] == 1
        assert status["lastScaleTime"]
        [metric] = status["currentMetrics"]
        assert metric["type"] == "Resource"
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["current"]["averageUtilization"] > 100
        conditions = _conditions(hpa)
        assert conditions["AbleToScale"] == (
            "True",
            "SucceededRescale",
            "the HPA controller was able to update the target scale to 3",
        )
        assert conditions["ScalingActive"] == (
            "True",
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from cpu resource "
            "utilization (percentage of request)",
        )
        assert conditions["ScalingLimited"] == (
            "True",
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
        events = core.list_namespaced_event(
            NS, field_selector="involvedObject.kind=HorizontalPodAutoscaler,type=Normal"
        ).items
        # Earlier syncs may warn that the new pods' samples predate their readiness.
        assert [(e.reason, e.message, e.source.component) for e in events] == [
            (
                "SuccessfulRescale",
                "New size: 3; reason: cpu resource utilization (percentage of request) above "
                "target",
                "horizontal-pod-autoscaler",
            )
        ]
    finally:
        core.delete_namespace(NS)


def test_custom_metrics_are_not_served(cluster: LocalCluster, tmp_path_factory: Any) -> None:
    api = cluster.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    autoscaling = client.AutoscalingV2Api(api)
    namespace = "custom-metrics"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        deployment = _deployment()
        deployment["spec"]["replicas"] = 1
        deployment["metadata"]["annotations"] = {}
        deployment["spec"]["template"]["metadata"]["annotations"] = {
            "local.gyre.dev/kubelet": "simulated"
        }
        apps.create_namespaced_deployment(namespace, deployment)
        pods_metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": "requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": "10"},
            },
        }
        autoscaling.create_namespaced_horizontal_pod_autoscaler(
            namespace, _autoscaler([pods_metric])
        )

        def inactive() -> tuple[str, str, str] | None:
            hpa = api.sanitize_for_serialization(
                autoscaling.read_namespaced_horizontal_pod_autoscaler("burner", namespace)
            )
            return _conditions(hpa).get("ScalingActive")

        assert wait_for(inactive, timeout=10) == (
            "False",
            "FailedGetPodsMetric",
            "the HPA was unable to compute the replica count: unable to get metric "
            "requests_per_second: unable to fetch metrics from custom metrics API: no custom "
            "metrics API (custom.metrics.k8s.io) registered",
        )
        kubectl: Kubectl = kubectl_runner(
            cluster.kubeconfig_path, tmp_path_factory.mktemp("kubecache")
        )
        described = kubectl("describe", "hpa", "burner", "-n", namespace).stdout
        assert "FailedGetPodsMetric" in described
        assert "FailedComputeMetricsReplicas" in described

        # Simulated pods have no resource metrics either.
        autoscaling.patch_namespaced_horizontal_pod_autoscaler(
            "burner", namespace, {"spec": {"metrics": [CPU_50]}}
        )
        cpu_message = (
            "the HPA was unable to compute the replica count: unable to get metrics for "
            "resource cpu: no metrics returned from resource metrics API"
        )
        assert wait_for(lambda: inactive() == ("False", "FailedGetResourceMetric", cpu_message))
    finally:
        core.delete_namespace(namespace)


def test_a_container_resource_metric_reads_one_container(cluster: LocalCluster) -> None:
    api = cluster.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    autoscaling = client.AutoscalingV2Api(api)
    namespace = "container-metrics"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        deployment = _deployment()
        [burn] = deployment["spec"]["template"]["spec"]["containers"]
        idle = {**burn, "name": "idle", "command": ["python", "-c", "import time; time.sleep(99)"]}
        deployment["spec"]["template"]["spec"]["containers"] = [burn, idle]
        apps.create_namespaced_deployment(namespace, deployment)
        idle_cpu = {
            "type": "ContainerResource",
            "containerResource": {
                "name": "cpu",
                "container": "idle",
                "target": {"type": "Utilization", "averageUtilization": 50},
            },
        }
        autoscaling.create_namespaced_horizontal_pod_autoscaler(namespace, _autoscaler([idle_cpu]))

        def active() -> dict[str, Any] | None:
            hpa = api.sanitize_for_serialization(
                autoscaling.read_namespaced_horizontal_pod_autoscaler("burner", namespace)
            )
            # The first syncs may find the pods' samples older than their readiness.
            active = _conditions(hpa).get("ScalingActive", ("",))[0] == "True"
            return hpa if active else None

        hpa = wait_for(active, timeout=20)
        conditions = _conditions(hpa)
        assert conditions["ScalingActive"] == (
            "True",
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from cpu container "
            "resource utilization (percentage of request)",
        )
        [metric] = hpa["status"]["currentMetrics"]
        assert metric["type"] == "ContainerResource"
        assert metric["containerResource"]["container"] == "idle"
        assert metric["containerResource"]["current"]["averageUtilization"] < 50
        assert apps.read_namespaced_deployment("burner", namespace).spec.replicas == 1
    finally:
        core.delete_namespace(namespace)
