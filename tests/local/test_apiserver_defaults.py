"""kube-apiserver's defaults of Pods and pod templates, as clients read them back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubectl_runner import Kubectl

pytestmark = pytest.mark.cluster

DIGEST = "sha256:" + "a" * 64
# Where each kind's pod spec is, and the collection it is created in.
POD_SPECS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Pod": ("/api/v1/namespaces/default/pods", ("spec",)),
    "Deployment": ("/apis/apps/v1/namespaces/default/deployments", ("spec", "template", "spec")),
    "ReplicaSet": ("/apis/apps/v1/namespaces/default/replicasets", ("spec", "template", "spec")),
    "Job": ("/apis/batch/v1/namespaces/default/jobs", ("spec", "template", "spec")),
    "CronJob": (
        "/apis/batch/v1/namespaces/default/cronjobs",
        ("spec", "jobTemplate", "spec", "template", "spec"),
    ),
}
CONTAINER_DEFAULTS = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "resources": {},
}
PROBE_DEFAULTS = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}
# A pod spec of one container that leaves every default to the API server (and asks for no
# service account token, which a Pod would otherwise get mounted).
MINIMAL = {
    "restartPolicy": "Never",
    "automountServiceAccountToken": False,
    "containers": [{"name": "c", "image": "i:1"}],
}


def _with_pod_spec(kind: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """An object of a kind whose pod spec is `pod_spec`."""
    template = {"metadata": {"labels": {"app": "x"}}, "spec": pod_spec}
    selector = {"matchLabels": {"app": "x"}}
    specs: dict[str, dict[str, Any]] = {
        "Pod": pod_spec,
        "Deployment": {"selector": selector, "template": template},
        "ReplicaSet": {"selector": selector, "template": template},
        "Job": {"template": template},
        "CronJob": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}},
    }
    return {"metadata": {"name": "x", "labels": {"app": "x"}}, "spec": specs[kind]}


def _created(apiserver: Any, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(apiserver.url + POD_SPECS[kind][0], json=obj)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _pod_spec_of(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = obj
    for key in POD_SPECS[kind][1]:
        found = found[key]
    return found


def _created_pod_spec(apiserver: Any, kind: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    return _pod_spec_of(kind, _created(apiserver, kind, _with_pod_spec(kind, pod_spec)))


@pytest.mark.parametrize("kind", list(POD_SPECS))
def test_every_pod_spec_gets_the_pod_spec_defaults(apiserver: Any, kind: str) -> None:
    spec = _created_pod_spec(apiserver, kind, MINIMAL)
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["securityContext"] == {}
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["containers"] == [
        {"name": "c", "image": "i:1", "imagePullPolicy": "IfNotPresent", **CONTAINER_DEFAULTS}
    ]


@pytest.mark.parametrize(
    ("kind", "restart_policy"),
    [
        ("Pod", "Always"),
        ("Deployment", "Always"),
        ("ReplicaSet", "Always"),
        ("Job", None),
        ("CronJob", None),
    ],
)
def test_restart_policy_is_defaulted_except_where_it_is_required(
    apiserver: Any, kind: str, restart_policy: str | None
) -> None:
    spec = _created_pod_spec(apiserver, kind, {"containers": [{"name": "c", "image": "i"}]})
    assert spec.get("restartPolicy") == restart_policy


@pytest.mark.parametrize("kind", list(POD_SPECS))
def test_only_pods_get_service_links(apiserver: Any, kind: str) -> None:
    spec = _created_pod_spec(apiserver, kind, MINIMAL)
    assert spec.get("enableServiceLinks") is (True if kind == "Pod" else None)


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/team/nginx", "Always"),
        ("localhost:5000/team/nginx:2", "IfNotPresent"),
        (f"nginx@{DIGEST}", "IfNotPresent"),
        (f"nginx:latest@{DIGEST}", "Always"),
    ],
)
def test_image_pull_policy_follows_the_tag(apiserver: Any, image: str, policy: str) -> None:
    spec = _created_pod_spec(apiserver, "Pod", {"containers": [{"name": "c", "image": image}]})
    assert spec["containers"][0]["imagePullPolicy"] == policy


def test_given_values_are_kept(apiserver: Any) -> None:
    given = {
        "restartPolicy": "OnFailure",
        "dnsPolicy": "Default",
        "terminationGracePeriodSeconds": 0,
        "enableServiceLinks": False,
        "securityContext": {"runAsUser": 1000},
        "containers": [
            {
                "name": "c",
                "image": "nginx",
                "imagePullPolicy": "Never",
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 2},
            }
        ],
    }
    spec = _created_pod_spec(apiserver, "Pod", given)
    assert {key: spec[key] for key in given if key != "containers"} == {
        key: value for key, value in given.items() if key != "containers"
    }
    [container] = spec["containers"]
    assert container["imagePullPolicy"] == "Never"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["readinessProbe"] == {
        "exec": {"command": ["true"]},
        **PROBE_DEFAULTS,
        "periodSeconds": 2,
    }


@pytest.mark.parametrize("kind", ["Pod", "Deployment"])
def test_container_ports_env_probes_and_hooks_get_their_defaults(apiserver: Any, kind: str) -> None:
    container = {
        "name": "c",
        "image": "i:1",
        "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
        "env": [
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        ],
        "livenessProbe": {"httpGet": {"port": 80}},
        "startupProbe": {"grpc": {"port": 9090}},
        "readinessProbe": {"tcpSocket": {"port": 80}},
        "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/stop"}}},
    }
    [defaulted] = _created_pod_spec(
        apiserver, kind, {"restartPolicy": "Always", "containers": [container]}
    )["containers"]
    assert defaulted["ports"] == [
        {"containerPort": 80, "protocol": "TCP"},
        {"containerPort": 53, "protocol": "UDP"},
    ]
    assert defaulted["env"] == [
        {
            "name": "NODE",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}},
        },
        {
            "name": "CPU",
            "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}},
        },
    ]
    assert defaulted["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        **PROBE_DEFAULTS,
    }
    assert defaulted["startupProbe"] == {"grpc": {"port": 9090, "service": ""}, **PROBE_DEFAULTS}
    assert defaulted["readinessProbe"] == {"tcpSocket": {"port": 80}, **PROBE_DEFAULTS}
    assert defaulted["lifecycle"] == {
        "preStop": {"httpGet": {"port": 80, "path": "/stop", "scheme": "HTTP"}}
    }


def test_volumes_get_their_source_defaults(apiserver: Any) -> None:
    volumes = [
        {"name": "scratch"},
        {"name": "config", "configMap": {"name": "c"}},
        {"name": "secret", "secret": {"secretName": "s", "defaultMode": 256}},
        {
            "name": "info",
            "downwardAPI": {
                "items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]
            },
        },
        {
            "name": "bundle",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token"}},
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "mem",
                                    "resourceFieldRef": {
                                        "containerName": "c",
                                        "resource": "limits.memory",
                                    },
                                }
                            ]
                        }
                    },
                ]
            },
        },
        {"name": "host", "hostPath": {"path": "/tmp"}},
    ]
    spec = _created_pod_spec(
        apiserver,
        "Deployment",
        {"containers": [{"name": "c", "image": "i:1"}], "volumes": volumes},
    )
    assert spec["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "config", "configMap": {"name": "c", "defaultMode": 420}},
        {"name": "secret", "secret": {"secretName": "s", "defaultMode": 256}},
        {
            "name": "info",
            "downwardAPI": {
                "defaultMode": 420,
                "items": [
                    {"path": "name", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}
                ],
            },
        },
        {
            "name": "bundle",
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "mem",
                                    "resourceFieldRef": {
                                        "containerName": "c",
                                        "resource": "limits.memory",
                                        "divisor": "0",
                                    },
                                }
                            ]
                        }
                    },
                ],
            },
        },
        {"name": "host", "hostPath": {"path": "/tmp", "type": ""}},
    ]


def test_a_pod_requests_its_limits_but_a_template_does_not(apiserver: Any) -> None:
    resources = {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}
    containers = [{"name": "c", "image": "i:1", "resources": resources}]
    pod = _created_pod_spec(apiserver, "Pod", {"containers": containers})
    template = _created_pod_spec(apiserver, "Deployment", {"containers": containers})
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert template["containers"][0]["resources"] == resources


def test_a_pod_on_the_host_network_gets_host_ports(apiserver: Any) -> None:
    container = {"name": "c", "image": "i:1", "ports": [{"containerPort": 8080}]}
    spec = _created_pod_spec(apiserver, "Pod", {"hostNetwork": True, "containers": [container]})
    assert spec["containers"][0]["ports"] == [
        {"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"}
    ]


def test_the_deprecated_service_account_follows_service_account_name(apiserver: Any) -> None:
    containers = [{"name": "c", "image": "i:1"}]
    named = _created_pod_spec(
        apiserver, "Deployment", {"serviceAccountName": "robot", "containers": containers}
    )
    assert (named["serviceAccountName"], named["serviceAccount"]) == ("robot", "robot")


@pytest.mark.parametrize(
    ("strategy", "defaulted"),
    [
        (
            None,
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
        ),
        (
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2}},
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "25%"}},
        ),
        ({"type": "Recreate"}, {"type": "Recreate"}),
    ],
)
def test_deployment_strategy_defaults(
    apiserver: Any, strategy: dict[str, Any] | None, defaulted: dict[str, Any]
) -> None:
    deployment = _with_pod_spec("Deployment", {"containers": [{"name": "c", "image": "i:1"}]})
    if strategy is not None:
        deployment["spec"]["strategy"] = strategy
    spec = _created(apiserver, "Deployment", deployment)["spec"]
    assert spec["strategy"] == defaulted
    assert (spec["replicas"], spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (
        1,
        10,
        600,
    )


@pytest.mark.parametrize(
    ("given", "defaulted"),
    [
        ({}, {"parallelism": 1, "completions": 1}),
        ({"parallelism": 3}, {"parallelism": 3}),
        ({"completions": 5}, {"parallelism": 1, "completions": 5}),
    ],
)
def test_job_completions_default_only_without_parallelism(
    apiserver: Any, given: dict[str, Any], defaulted: dict[str, Any]
) -> None:
    job = _with_pod_spec("Job", MINIMAL)
    job["spec"].update(given)
    spec = _created(apiserver, "Job", job)["spec"]
    assert {key: spec[key] for key in ("parallelism", "completions") if key in spec} == defaulted
    assert (spec["backoffLimit"], spec["completionMode"]) == (6, "NonIndexed")
    assert spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"


def test_a_job_without_labels_is_labelled_as_its_pods(apiserver: Any) -> None:
    job = _with_pod_spec("Job", MINIMAL)
    del job["metadata"]["labels"]
    del job["spec"]["template"]["metadata"]
    created = _created(apiserver, "Job", job)
    uid = created["metadata"]["uid"]
    assert created["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "x",
        "controller-uid": uid,
        "job-name": "x",
    }
    assert created["metadata"]["labels"] == created["spec"]["template"]["metadata"]["labels"]


# ---- kubectl round trips ----


def _web(image: str) -> dict[str, Any]:
    """A Deployment leaving to the API server most of what it defaults."""
    container = {
        "name": "web",
        "image": image,
        "ports": [{"containerPort": 8080}],
        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "readinessProbe": {"httpGet": {"port": 8080}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": "web"}}],
                },
            },
        },
    }


def _replica_sets(kubectl: Kubectl) -> list[str]:
    listed = json.loads(kubectl("get", "rs", "-l", "app=web", "-o", "json").stdout)
    return sorted(rs["metadata"]["name"] for rs in listed["items"])


def test_kubectl_diff_apply_and_rollout_undo_round_trip(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(yaml.safe_dump(_web("registry.local/web:1")))
    kubectl("apply", "-f", str(manifest))
    kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    diff = kubectl("diff", "-f", str(manifest), check=False)
    assert (diff.returncode, diff.stdout) == (0, "")
    assert kubectl("apply", "-f", str(manifest)).stdout == "deployment.apps/web unchanged\n"
    first = _replica_sets(kubectl)
    kubectl("set", "image", "deployment/web", "web=registry.local/web:2")
    kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    both = _replica_sets(kubectl)
    assert len(first) == 1 and len(both) == 2
    kubectl("rollout", "undo", "deployment/web")
    kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    assert _replica_sets(kubectl) == both
    revision = json.loads(kubectl("get", "rs", first[0], "-o", "json").stdout)["metadata"]
    assert revision["annotations"]["deployment.kubernetes.io/revision"] == "3"


SERVICE_PORTS = [{"name": "http", "port": 80}]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"selector": {"app": "x"}, "ports": SERVICE_PORTS},
            {
                "type": "ClusterIP",
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
            },
            id="cluster-ip",
        ),
        pytest.param(
            {"clusterIP": "None", "selector": {"app": "x"}, "ports": SERVICE_PORTS},
            {"clusterIP": "None", "clusterIPs": ["None"], "ipFamilyPolicy": "SingleStack"},
            id="headless",
        ),
        pytest.param(
            {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": SERVICE_PORTS},
            {"externalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": True},
            id="load-balancer",
        ),
    ],
)
def test_services_get_kube_apiserver_defaults(
    apiserver: Any, spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    response = requests.post(
        apiserver.url + "/api/v1/namespaces/default/services",
        json={"metadata": {"generateName": "svc-"}, "spec": spec},
    )
    assert response.status_code == 201, response.text
    created = response.json()["spec"]
    assert created.items() >= expected.items()
    assert created["ports"] == [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]
    assert created["clusterIPs"] == [created["clusterIP"]]


def test_an_external_name_service_gets_no_cluster_ip_or_traffic_policy(apiserver: Any) -> None:
    response = requests.post(
        apiserver.url + "/api/v1/namespaces/default/services",
        json={
            "metadata": {"name": "external"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"},
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()["spec"]
    assert {"clusterIP", "clusterIPs", "internalTrafficPolicy", "ipFamilies"}.isdisjoint(created)
