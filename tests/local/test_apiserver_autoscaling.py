"""autoscaling/v1 HorizontalPodAutoscalers: a converted view of the stored autoscaling/v2 ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import yaml
from kubectl_runner import Kubectl

pytestmark = pytest.mark.cluster

V1 = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers"
V2 = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"
TARGET = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
CPU_50 = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
}
PODS_METRIC = {
    "type": "Pods",
    "pods": {
        "metric": {"name": "requests_per_second"},
        "target": {"type": "AverageValue", "averageValue": "10"},
    },
}
# The Pods metric as v1 carries it, in its annotation.
PODS_METRIC_V1 = (
    '[{"type":"Pods","pods":{"metricName":"requests_per_second","targetAverageValue":"10"}}]'
)


def _hpa(api_version: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", **metadata},
        "spec": {"scaleTargetRef": TARGET, "maxReplicas": 3, **spec},
    }


def _created(apiserver: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(apiserver.url + path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _read(apiserver: Any, path: str) -> dict[str, Any]:
    response = requests.get(f"{apiserver.url}{path}/web")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_a_v1_autoscaler_is_read_in_v2_with_a_cpu_metric(apiserver: Any) -> None:
    created = _created(
        apiserver, V1, _hpa("autoscaling/v1", {"targetCPUUtilizationPercentage": 50})
    )
    assert created["apiVersion"] == "autoscaling/v1"
    assert created["spec"] == {
        "scaleTargetRef": TARGET,
        "minReplicas": 1,
        "maxReplicas": 3,
        "targetCPUUtilizationPercentage": 50,
    }
    stored = _read(apiserver, V2)
    assert stored["apiVersion"] == "autoscaling/v2"
    assert "generateName" not in stored["metadata"]
    assert stored["metadata"]["uid"] == created["metadata"]["uid"]
    assert stored["spec"] == {
        "scaleTargetRef": TARGET,
        "minReplicas": 1,
        "maxReplicas": 3,
        "metrics": [CPU_50],
    }
    assert "annotations" not in stored["metadata"]


def test_a_v2_autoscaler_is_read_in_v1_with_its_other_metrics_annotated(apiserver: Any) -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    body = _hpa("autoscaling/v2", {"metrics": [PODS_METRIC, CPU_50], "behavior": behavior})
    _created(apiserver, V2, body)
    shown = _read(apiserver, V1)
    assert shown["apiVersion"] == "autoscaling/v1"
    assert shown["spec"]["targetCPUUtilizationPercentage"] == 50
    assert "metrics" not in shown["spec"] and "behavior" not in shown["spec"]
    annotations = shown["metadata"]["annotations"]
    assert annotations["autoscaling.alpha.kubernetes.io/metrics"] == PODS_METRIC_V1
    assert json.loads(annotations["autoscaling.alpha.kubernetes.io/behavior"]) == behavior


def test_the_v1_annotations_come_back_as_v2_fields(apiserver: Any) -> None:
    annotations = {"autoscaling.alpha.kubernetes.io/metrics": PODS_METRIC_V1, "team": "ml"}
    body = _hpa("autoscaling/v1", {"targetCPUUtilizationPercentage": 50}, annotations=annotations)
    _created(apiserver, V1, body)
    stored = _read(apiserver, V2)
    # As kube-apiserver converts them: the annotated metrics first, then the cpu target.
    assert stored["spec"]["metrics"] == [PODS_METRIC, CPU_50]
    assert stored["metadata"]["annotations"] == {"team": "ml"}


def test_an_autoscaler_without_metrics_targets_80_percent_cpu_in_both(apiserver: Any) -> None:
    _created(apiserver, V1, _hpa("autoscaling/v1", {}))
    assert _read(apiserver, V1)["spec"]["targetCPUUtilizationPercentage"] == 80
    [metric] = _read(apiserver, V2)["spec"]["metrics"]
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}


@pytest.mark.parametrize(
    ("content_type", "patch"),
    [
        ("application/merge-patch+json", {"spec": {"targetCPUUtilizationPercentage": 70}}),
        (
            "application/json-patch+json",
            [{"op": "replace", "path": "/spec/targetCPUUtilizationPercentage", "value": 70}],
        ),
        (
            "application/strategic-merge-patch+json",
            {"spec": {"targetCPUUtilizationPercentage": 70}},
        ),
    ],
)
def test_a_v1_patch_applies_to_the_v1_form(apiserver: Any, content_type: str, patch: Any) -> None:
    _created(apiserver, V2, _hpa("autoscaling/v2", {"metrics": [PODS_METRIC, CPU_50]}))
    response = requests.patch(
        f"{apiserver.url}{V1}/web", data=json.dumps(patch), headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text
    assert response.json()["spec"]["targetCPUUtilizationPercentage"] == 70
    cpu_70 = {
        **CPU_50,
        "resource": {
            **CPU_50["resource"],
            "target": {**CPU_50["resource"]["target"], "averageUtilization": 70},
        },
    }
    assert _read(apiserver, V2)["spec"]["metrics"] == [PODS_METRIC, cpu_70]


def test_a_v1_status_is_stored_as_v2_current_metrics(apiserver: Any) -> None:
    _created(apiserver, V1, _hpa("autoscaling/v1", {"targetCPUUtilizationPercentage": 50}))
    status = {"currentReplicas": 2, "desiredReplicas": 2, "currentCPUUtilizationPercentage": 35}
    response = requests.patch(
        f"{apiserver.url}{V1}/web/status",
        data=json.dumps({"status": status}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    assert _read(apiserver, V2)["status"]["currentMetrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35}}}
    ]


def test_both_versions_list_and_watch_the_same_objects(apiserver: Any) -> None:
    created = _created(apiserver, V2, _hpa("autoscaling/v2", {"metrics": [CPU_50]}))
    for path, api_version in ((V1, "autoscaling/v1"), (V2, "autoscaling/v2")):
        listed = requests.get(apiserver.url + path).json()
        assert listed["apiVersion"] == api_version
        assert [item["metadata"]["uid"] for item in listed["items"]] == [created["metadata"]["uid"]]
        watched = requests.get(
            apiserver.url + path, params={"watch": "true", "timeoutSeconds": "1"}
        ).text.splitlines()
        event = json.loads(watched[0])
        assert (event["type"], event["object"]["apiVersion"]) == ("ADDED", api_version)


SELECTOR = {"matchLabels": {"queue": "jobs"}}
OTHER_METRICS = [
    PODS_METRIC,
    {
        "type": "Resource",
        "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}},
    },
    {
        "type": "ContainerResource",
        "containerResource": {
            "name": "cpu",
            "container": "app",
            "target": {"type": "Utilization", "averageUtilization": 60},
        },
    },
    {
        "type": "Object",
        "object": {
            "describedObject": {"apiVersion": "v1", "kind": "Service", "name": "web"},
            "metric": {"name": "hits", "selector": SELECTOR},
            "target": {"type": "Value", "value": "100"},
        },
    },
    {
        "type": "External",
        "external": {
            "metric": {"name": "queue_depth", "selector": SELECTOR},
            "target": {"type": "AverageValue", "averageValue": "30"},
        },
    },
]


@pytest.mark.parametrize("metric", OTHER_METRICS, ids=lambda m: str(m["type"]))
def test_a_v2_metric_survives_a_v1_read_and_replace(apiserver: Any, metric: Any) -> None:
    _created(apiserver, V2, _hpa("autoscaling/v2", {"metrics": [metric]}))
    shown = _read(apiserver, V1)
    assert "targetCPUUtilizationPercentage" not in shown["spec"]
    replaced = requests.put(f"{apiserver.url}{V1}/web", json=shown)
    assert replaced.status_code == 200, replaced.text
    assert _read(apiserver, V2)["spec"]["metrics"] == [metric]


def test_v1_table_rows_are_printed_from_the_stored_form(apiserver: Any) -> None:
    _created(apiserver, V1, _hpa("autoscaling/v1", {"targetCPUUtilizationPercentage": 50}))
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io"
    table = requests.get(apiserver.url + V1, headers={"Accept": accept}).json()
    [row] = table["rows"]
    assert row["cells"][:4] == ["web", "Deployment/web", "cpu: <unknown>/50%", "1"]


def test_discovery_serves_both_versions_v2_preferred(apiserver: Any) -> None:
    group = requests.get(apiserver.url + "/apis/autoscaling").json()
    assert [v["version"] for v in group["versions"]] == ["v2", "v1"]
    assert group["preferredVersion"]["version"] == "v2"
    resources = requests.get(apiserver.url + "/apis/autoscaling/v1").json()["resources"]
    assert {r["name"] for r in resources} == {
        "horizontalpodautoscalers",
        "horizontalpodautoscalers/status",
    }


# ---- kubectl ----


def test_kubectl_autoscale_creates_an_autoscaler_kubectl_gets(kubectl: Kubectl) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]},
            },
        },
    }
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(deployment))
    created = kubectl("autoscale", "deployment", "web", "--min=1", "--max=3", "--cpu-percent=50")
    assert created.stdout == "horizontalpodautoscaler.autoscaling/web autoscaled\n"
    stored = json.loads(kubectl("get", "hpa", "web", "-o", "json").stdout)
    assert stored["apiVersion"] == "autoscaling/v2"
    assert "generateName" not in stored["metadata"]
    assert stored["spec"]["scaleTargetRef"] == TARGET
    assert (stored["spec"]["minReplicas"], stored["spec"]["maxReplicas"]) == (1, 3)
    assert stored["spec"]["metrics"] == [CPU_50]
    v1 = json.loads(
        kubectl("get", "horizontalpodautoscalers.v1.autoscaling", "web", "-o", "json").stdout
    )
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
    [row] = kubectl("get", "hpa", "--no-headers").stdout.splitlines()
    assert row.split()[:5] == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "1"]
