"""PodDisruptionBudgets at work: the disruption controller's status, the eviction subresource
it gates (official client and kubectl drain), as a real cluster answers them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubectl_runner import Kubectl
from kubernetes import client

from gyre_local.cluster import LocalCluster, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.kubectl]


@pytest.fixture
def namespace(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own, deleted afterwards."""
    name = request.node.name.replace("_", "-")[:50].rstrip("-")
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def policy(cluster: LocalCluster) -> client.PolicyV1Api:
    return client.PolicyV1Api(cluster.api_client())


def bare_pods(core: client.CoreV1Api, namespace: str, count: int) -> list[str]:
    """Ready pods labelled app=web that no controller replaces."""
    names = [f"web-{i}" for i in range(count)]
    for name in names:
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "web:1"}]},
            },
        )
    wait_for(lambda: all(_ready(core.read_namespaced_pod(n, namespace)) for n in names))
    return names


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def budget(policy: client.PolicyV1Api, namespace: str, **spec: Any) -> None:
    policy.create_namespaced_pod_disruption_budget(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
        },
    )


def settled(policy: client.PolicyV1Api, namespace: str, **expected: int) -> dict[str, Any]:
    """The budget's status once the controller has observed it with the expected figures."""

    def status() -> dict[str, Any] | None:
        budget = policy.read_namespaced_pod_disruption_budget("web", namespace)
        found: dict[str, Any] = budget.to_dict()["status"] or {}
        figures = {k: found.get(_snake(k)) for k in expected}
        return found if figures == expected else None

    return wait_for(status, timeout=10)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def evict(core: client.CoreV1Api, namespace: str, name: str) -> None:
    core.create_namespaced_pod_eviction(
        name, namespace, {"metadata": {"name": name, "namespace": namespace}}
    )


def test_min_available_counts_the_selected_pods(
    core: client.CoreV1Api, policy: client.PolicyV1Api, namespace: str
) -> None:
    bare_pods(core, namespace, 3)
    budget(policy, namespace, minAvailable=2)
    status = settled(
        policy,
        namespace,
        currentHealthy=3,
        desiredHealthy=2,
        expectedPods=3,
        disruptionsAllowed=1,
    )
    [condition] = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "DisruptionAllowed",
        "True",
        "SufficientPods",
    )


def test_an_eviction_uses_up_the_budget_and_the_next_is_refused_with_429(
    core: client.CoreV1Api, policy: client.PolicyV1Api, namespace: str
) -> None:
    bare_pods(core, namespace, 3)
    budget(policy, namespace, minAvailable=2)
    settled(policy, namespace, disruptionsAllowed=1)

    evict(core, namespace, "web-0")
    with pytest.raises(client.ApiException) as refused:
        evict(core, namespace, "web-1")

    assert refused.value.status == 429
    body = json.loads(refused.value.body)
    assert body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
        }
    ]
    names = [p.metadata.name for p in core.list_namespaced_pod(namespace).items]
    assert names == ["web-1", "web-2"]
    settled(policy, namespace, currentHealthy=2, disruptionsAllowed=0)


def test_max_unavailable_counts_on_the_deployment_scale(
    cluster: LocalCluster, apps: client.AppsV1Api, policy: client.PolicyV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "main", "image": "web:1"}]},
                },
            },
        },
    )
    budget(policy, namespace, maxUnavailable="25%")
    settled(
        policy,
        namespace,
        expectedPods=4,
        currentHealthy=4,
        desiredHealthy=3,
        disruptionsAllowed=1,
    )


def test_a_percentage_over_pods_without_a_controller_allows_no_disruption(
    core: client.CoreV1Api, policy: client.PolicyV1Api, namespace: str
) -> None:
    bare_pods(core, namespace, 2)
    budget(policy, namespace, maxUnavailable=1)
    status = settled(policy, namespace, disruptionsAllowed=0)
    [condition] = status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "SyncFailed")
    assert condition["message"].startswith("found no controllers for pod")
    with pytest.raises(client.ApiException) as refused:
        evict(core, namespace, "web-0")
    assert refused.value.status == 429


def test_without_a_budget_an_eviction_deletes_and_a_dry_run_does_not(
    core: client.CoreV1Api, namespace: str
) -> None:
    bare_pods(core, namespace, 2)
    core.create_namespaced_pod_eviction(
        "web-0", namespace, {"metadata": {"name": "web-0"}}, dry_run="All"
    )
    evict(core, namespace, "web-1")
    assert [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == ["web-0"]


def test_two_budgets_over_one_pod_are_an_error(
    core: client.CoreV1Api, policy: client.PolicyV1Api, namespace: str
) -> None:
    bare_pods(core, namespace, 1)
    budget(policy, namespace, minAvailable=0)
    policy.create_namespaced_pod_disruption_budget(
        namespace,
        {
            "metadata": {"name": "other"},
            "spec": {"minAvailable": 0, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    with pytest.raises(client.ApiException) as refused:
        evict(core, namespace, "web-0")
    assert refused.value.status == 500
    assert "more than one PodDisruptionBudget" in json.loads(refused.value.body)["message"]


def test_kubectl_drain_evicts_what_the_budget_allows_and_reports_the_rest(
    core: client.CoreV1Api, kubectl: Kubectl, namespace: str
) -> None:
    bare_pods(core, namespace, 2)
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "web"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            }
        ),
    )
    wait_for(
        lambda: (
            kubectl(
                "get", "pdb", "web", "-n", namespace, "-o", "jsonpath={.status.disruptionsAllowed}"
            ).stdout
            == "1"
        )
    )
    try:
        drained = kubectl(
            "drain", "local", "--force", "--ignore-daemonsets", "--timeout=3s", check=False
        )
    finally:
        kubectl("uncordon", "local")

    assert drained.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget." in drained.stderr
    assert len(core.list_namespaced_pod(namespace).items) == 1
