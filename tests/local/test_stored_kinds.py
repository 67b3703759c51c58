"""Kinds the local cluster stores without acting on them (PriorityClass, webhook
configurations, ResourceQuota, LimitRange) and the priority admission of pods, with kubectl."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubectl_runner import Kubectl, kubectl_runner
from kubernetes import client

from gyre_local.cluster import LocalCluster

pytestmark = pytest.mark.cluster
NS = "default"


@pytest.fixture(scope="module")
def kubectl(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return kubectl_runner(cluster.kubeconfig_path, tmp_path_factory.mktemp("kubecache"))


def apply(kubectl: Kubectl, *documents: dict[str, Any], check: bool = True) -> Any:
    return kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents), check=check)


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "app:1"}], **spec},
    }


def priority_class(name: str, value: int, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
        **fields,
    }


def rows(kubectl: Kubectl, *args: str) -> list[list[str]]:
    return [line.split() for line in kubectl("get", *args).stdout.splitlines()]


def test_api_resources_lists_the_new_kinds(kubectl: Kubectl) -> None:
    listed = {
        line.split()[0]: line.split()[1:]
        for line in kubectl("api-resources", "--no-headers").stdout.splitlines()
    }
    assert listed["endpointslices"] == ["discovery.k8s.io/v1", "true", "EndpointSlice"]
    assert listed["persistentvolumes"] == ["pv", "v1", "false", "PersistentVolume"]
    assert listed["statefulsets"] == ["sts", "apps/v1", "true", "StatefulSet"]
    assert listed["daemonsets"] == ["ds", "apps/v1", "true", "DaemonSet"]
    assert listed["controllerrevisions"] == ["apps/v1", "true", "ControllerRevision"]
    assert listed["priorityclasses"] == ["pc", "scheduling.k8s.io/v1", "false", "PriorityClass"]
    assert listed["resourcequotas"] == ["quota", "v1", "true", "ResourceQuota"]
    assert listed["limitranges"] == ["limits", "v1", "true", "LimitRange"]
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        assert listed[f"{kind.lower()}s"] == ["admissionregistration.k8s.io/v1", "false", kind]


def test_the_system_priority_classes_exist_from_the_start(kubectl: Kubectl) -> None:
    table = rows(kubectl, "priorityclasses", "system-cluster-critical", "system-node-critical")
    assert table[0] == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    assert [(r[0], r[1], r[2], r[4]) for r in table[1:]] == [
        ("system-cluster-critical", "2000000000", "false", "PreemptLowerPriority"),
        ("system-node-critical", "2000001000", "false", "PreemptLowerPriority"),
    ]


def test_a_pod_gets_the_priority_of_its_class(core: client.CoreV1Api, kubectl: Kubectl) -> None:
    apply(
        kubectl,
        priority_class("batch-low", 100, preemptionPolicy="Never", description="batch work"),
        pod("prioritized", priorityClassName="batch-low"),
        pod("critical", priorityClassName="system-node-critical"),
        pod("ordinary"),
    )
    low = core.read_namespaced_pod("prioritized", NS).spec
    assert (low.priority, low.preemption_policy) == (100, "Never")
    critical = core.read_namespaced_pod("critical", NS).spec
    assert (critical.priority, critical.preemption_policy) == (2000001000, "PreemptLowerPriority")
    ordinary = core.read_namespaced_pod("ordinary", NS).spec
    assert (ordinary.priority, ordinary.priority_class_name, ordinary.preemption_policy) == (
        0,
        None,
        "PreemptLowerPriority",
    )
    assert rows(kubectl, "pc", "batch-low")[1][:3] == ["batch-low", "100", "false"]


def test_a_pod_naming_an_unknown_class_is_refused(kubectl: Kubectl) -> None:
    refused = apply(kubectl, pod("orphan", priorityClassName="nope"), check=False)
    assert refused.returncode != 0
    assert 'pods "orphan" is forbidden: no PriorityClass with name nope was found' in refused.stderr
    assert kubectl("get", "pod", "orphan", check=False).returncode != 0


def test_a_pod_giving_another_priority_than_its_class_is_refused(kubectl: Kubectl) -> None:
    refused = apply(
        kubectl,
        pod("insistent", priorityClassName="system-cluster-critical", priority=5),
        check=False,
    )
    assert refused.returncode != 0
    assert (
        'pods "insistent" is forbidden: the integer value of priority (5) must not be provided '
        "in pod spec; priority admission controller computed 2000000000 from the given "
        "PriorityClass name"
    ) in refused.stderr


def test_the_global_default_class_applies_to_pods_naming_none(
    core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    apply(kubectl, priority_class("everyday", 7, globalDefault=True))
    try:
        apply(kubectl, pod("defaulted"))
    finally:
        kubectl("delete", "priorityclass", "everyday")
    spec = core.read_namespaced_pod("defaulted", NS).spec
    assert (spec.priority_class_name, spec.priority) == ("everyday", 7)


def stored_yaml(kubectl: Kubectl, kind: str, name: str) -> Any:
    return yaml.safe_load(kubectl("get", kind, name, "-o", "yaml").stdout)


def webhook(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": {"service": {"namespace": NS, "name": "hooks", "path": "/check"}},
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }


def test_webhook_configurations_are_stored_defaulted_and_never_called(
    core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    group = "admissionregistration.k8s.io/v1"
    apply(
        kubectl,
        {
            "apiVersion": group,
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "checks"},
            "webhooks": [webhook("one.example.com"), webhook("two.example.com")],
        },
        {
            "apiVersion": group,
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "changes"},
            "webhooks": [webhook("three.example.com")],
        },
    )
    table = rows(kubectl, "validatingwebhookconfigurations", "checks")
    assert table[0] == ["NAME", "WEBHOOKS", "AGE"] and table[1][:2] == ["checks", "2"]
    assert rows(kubectl, "mutatingwebhookconfigurations", "changes")[1][:2] == ["changes", "1"]
    stored = yaml.safe_load(
        kubectl("get", "validatingwebhookconfiguration", "checks", "-o", "yaml").stdout
    )
    first = stored["webhooks"][0]
    assert (first["failurePolicy"], first["matchPolicy"], first["timeoutSeconds"]) == (
        "Fail",
        "Equivalent",
        10,
    )
    assert (first["namespaceSelector"], first["objectSelector"]) == ({}, {})
    assert first["rules"][0]["scope"] == "*"
    assert first["clientConfig"]["service"]["port"] == 443
    mutating = yaml.safe_load(
        kubectl("get", "mutatingwebhookconfiguration", "changes", "-o", "yaml").stdout
    )
    assert mutating["webhooks"][0]["reinvocationPolicy"] == "Never"
    # Nothing calls the webhooks: a pod they match is created as before.
    apply(kubectl, pod("unchecked"))
    assert core.read_namespaced_pod("unchecked", NS).metadata.name == "unchecked"


def test_quotas_and_limit_ranges_are_stored_not_enforced(
    core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    apply(
        kubectl,
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "small"},
            "spec": {"hard": {"pods": "1", "requests.cpu": "1", "limits.memory": "1Gi"}},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "bounds"},
            "spec": {
                "limits": [
                    {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
                    {"type": "Pod", "max": {"cpu": "4"}},
                ]
            },
        },
        pod("over-1"),
        pod("over-2"),
    )
    assert rows(kubectl, "quota", "small")[0] == ["NAME", "REQUEST", "LIMIT", "AGE"]
    assert rows(kubectl, "limits", "bounds")[0] == ["NAME", "CREATED", "AT"]
    limits = core.read_namespaced_limit_range("bounds", NS).spec.limits
    assert (limits[0].default, limits[0].default_request) == (
        {"cpu": "2"},
        {"cpu": "2", "memory": "64Mi"},
    )
    assert limits[1].default is None
    # Not enforced: both pods exist beyond the quota, without the limit range's defaults.
    spec = core.read_namespaced_pod("over-2", NS).spec
    assert spec.containers[0].resources.limits is None
