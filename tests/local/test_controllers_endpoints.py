"""The Endpoints controller against the local cluster (simulated kubelet)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from gyre_local.cluster import LocalCluster, wait_for
from gyre_local.kubelet.kubelet import Behaviour

pytestmark = pytest.mark.cluster
NS = "default"


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    port = {"name": "http", "containerPort": 8080}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "server", "ports": [port]}]},
    }


def service(name: str, selector: dict[str, str], target: int | str = "http") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"team": "ml"}},
        "spec": {
            "selector": selector,
            "ports": [{"name": "web", "port": 80, "targetPort": target}],
        },
    }


def addresses(core: client.CoreV1Api, name: str, kind: str = "addresses") -> list[str]:
    try:
        endpoints = core.read_namespaced_endpoints(name, NS)
    except ApiException:
        return []
    return sorted(
        a.target_ref.name for s in endpoints.subsets or [] for a in getattr(s, kind) or []
    )


def test_ready_pods_become_addresses_with_named_ports(core: client.CoreV1Api) -> None:
    for name in ("a-1", "a-2"):
        core.create_namespaced_pod(NS, pod(name, {"app": "a"}))
    core.create_namespaced_pod(NS, pod("other", {"app": "b"}))
    core.create_namespaced_service(NS, service("a", {"app": "a"}))
    wait_for(lambda: addresses(core, "a") == ["a-1", "a-2"])
    endpoints = core.read_namespaced_endpoints("a", NS)
    assert endpoints.metadata.labels == {"team": "ml"}
    (subset,) = endpoints.subsets
    assert {(a.ip, a.node_name, a.target_ref.kind) for a in subset.addresses} == {
        ("127.0.0.1", "local", "Pod")
    }
    assert [(p.name, p.port, p.protocol) for p in subset.ports] == [("web", 8080, "TCP")]


def test_numeric_target_port_and_pod_changes(core: client.CoreV1Api) -> None:
    core.create_namespaced_service(NS, service("n", {"app": "n"}, target=9000))
    core.create_namespaced_pod(NS, pod("n-1", {"app": "n"}))
    wait_for(lambda: addresses(core, "n") == ["n-1"])
    assert core.read_namespaced_endpoints("n", NS).subsets[0].ports[0].port == 9000
    core.create_namespaced_pod(NS, pod("n-2", {"app": "n"}))
    wait_for(lambda: addresses(core, "n") == ["n-1", "n-2"])
    core.delete_namespaced_pod("n-1", NS)
    wait_for(lambda: addresses(core, "n") == ["n-2"])
    core.patch_namespaced_pod("n-2", NS, {"metadata": {"labels": {"app": "elsewhere"}}})
    wait_for(lambda: addresses(core, "n") == [])


def test_unready_pods_are_not_ready_addresses(
    cluster: LocalCluster, core: client.CoreV1Api
) -> None:
    cluster.simulation.add(Behaviour(ready=False), name_prefix="slow-")
    core.create_namespaced_pod(NS, pod("slow-1", {"app": "slow"}))
    core.create_namespaced_service(NS, service("slow", {"app": "slow"}))
    wait_for(lambda: addresses(core, "slow", "not_ready_addresses") == ["slow-1"])
    assert addresses(core, "slow") == []


def test_endpoints_go_with_their_service(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod("g-1", {"app": "g"}))
    core.create_namespaced_service(NS, service("g", {"app": "g"}))
    wait_for(lambda: addresses(core, "g") == ["g-1"])
    core.delete_namespaced_service("g", NS, _preload_content=False)

    def gone() -> bool:
        try:
            core.read_namespaced_endpoints("g", NS)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(gone)
