"""EndpointSlices (discovery.k8s.io/v1) kept by the Endpoints controller (simulated kubelet)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest
from kubectl_runner import Kubectl, kubectl_runner
from kubernetes import client

from gyre_local.cluster import LocalCluster, wait_for
from gyre_local.controllers.endpoints import EndpointsController
from gyre_local.kubelet.kubelet import Behaviour

pytestmark = pytest.mark.cluster
NS = "default"
SERVICE_LABEL = "kubernetes.io/service-name"


@pytest.fixture(scope="module")
def kubectl(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return kubectl_runner(cluster.kubeconfig_path, tmp_path_factory.mktemp("kubecache"))


def pod(name: str, labels: dict[str, str], port_name: str = "http") -> dict[str, Any]:
    port = {"name": port_name, "containerPort": 8080}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "server", "ports": [port]}]},
    }


def service(name: str, selector: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"team": "ml"}},
        "spec": {
            "selector": selector,
            "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
            **spec,
        },
    }


@pytest.fixture(scope="module")
def slices(cluster: LocalCluster) -> Any:
    """The EndpointSlices of a Service, as JSON (the Python client refuses the null endpoints
    of a placeholder slice, which a real server returns too)."""

    def read(service_name: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"labelSelector": f"{SERVICE_LABEL}={service_name}"})
        url = f"{cluster.url}/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices?{query}"
        with urllib.request.urlopen(url, context=cluster.ssl_context(), timeout=10) as answer:
            return list(json.load(answer)["items"])

    return read


@pytest.fixture(scope="module")
def endpoint_names(slices: Any) -> Any:
    """The names of the pods in a Service's slices."""

    def names(service_name: str) -> list[str]:
        return sorted(
            e["targetRef"]["name"] for s in slices(service_name) for e in s.get("endpoints") or []
        )

    return names


def test_a_service_gets_a_slice_of_its_ready_pods(
    core: client.CoreV1Api, slices: Any, endpoint_names: Any
) -> None:
    for name in ("s-1", "s-2"):
        core.create_namespaced_pod(NS, pod(name, {"app": "s"}))
    created = core.create_namespaced_service(NS, service("s", {"app": "s"}))
    wait_for(lambda: endpoint_names("s") == ["s-1", "s-2"])
    (found,) = slices("s")
    metadata = found["metadata"]
    assert metadata["name"].startswith("s-") and len(metadata["name"]) == len("s-") + 5
    assert metadata["generateName"] == "s-"
    assert metadata["labels"] == {
        "team": "ml",
        SERVICE_LABEL: "s",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    }
    (owner,) = metadata["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Service",
        "s",
        created.metadata.uid,
        True,
    )
    assert found["addressType"] == "IPv4"
    assert found["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    first = found["endpoints"][0]
    assert first["addresses"] == ["127.0.0.1"]
    assert first["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert first["nodeName"] == "local"
    assert first["targetRef"]["kind"] == "Pod" and first["targetRef"]["namespace"] == NS


def test_not_ready_pods_and_pod_changes(
    cluster: LocalCluster, core: client.CoreV1Api, slices: Any, endpoint_names: Any
) -> None:
    cluster.simulation.add(Behaviour(ready=False), name_prefix="cold-")
    core.create_namespaced_service(NS, service("warm", {"app": "warm"}))
    core.create_namespaced_pod(NS, pod("cold-1", {"app": "warm"}))
    core.create_namespaced_pod(NS, pod("warm-1", {"app": "warm"}))
    wait_for(lambda: endpoint_names("warm") == ["cold-1", "warm-1"])
    conditions = {e["targetRef"]["name"]: e["conditions"] for e in slices("warm")[0]["endpoints"]}
    assert conditions["cold-1"] == {"ready": False, "serving": False, "terminating": False}
    core.delete_namespaced_pod("warm-1", NS)
    wait_for(lambda: endpoint_names("warm") == ["cold-1"])
    core.patch_namespaced_pod("cold-1", NS, {"metadata": {"labels": {"app": "elsewhere"}}})
    wait_for(lambda: endpoint_names("warm") == [])
    (placeholder,) = slices("warm")
    assert placeholder["endpoints"] is None and placeholder["ports"] is None


def test_pods_serving_different_ports_get_a_slice_each(
    core: client.CoreV1Api, slices: Any, endpoint_names: Any
) -> None:
    core.create_namespaced_pod(NS, pod("mixed-a", {"app": "mixed"}))
    second = pod("mixed-b", {"app": "mixed"})
    second["spec"]["containers"][0]["ports"][0]["containerPort"] = 9090
    core.create_namespaced_pod(NS, second)
    core.create_namespaced_service(NS, service("mixed", {"app": "mixed"}))
    wait_for(lambda: len(slices("mixed")) == 2)
    by_port = {s["ports"][0]["port"]: s["endpoints"] for s in slices("mixed")}
    assert {port: [e["targetRef"]["name"] for e in e_] for port, e_ in by_port.items()} == {
        8080: ["mixed-a"],
        9090: ["mixed-b"],
    }


def test_a_deleted_slice_comes_back_and_slices_go_with_their_service(
    core: client.CoreV1Api, slices: Any, endpoint_names: Any
) -> None:
    core.create_namespaced_pod(NS, pod("back-1", {"app": "back"}))
    core.create_namespaced_service(NS, service("back", {"app": "back"}))
    wait_for(lambda: endpoint_names("back") == ["back-1"])
    (first,) = slices("back")
    client.DiscoveryV1Api(core.api_client).delete_namespaced_endpoint_slice(
        first["metadata"]["name"], NS
    )
    wait_for(
        lambda: (
            [s["metadata"]["name"] for s in slices("back")] not in ([], [first["metadata"]["name"]])
        )
    )
    assert endpoint_names("back") == ["back-1"]
    core.delete_namespaced_service("back", NS)
    wait_for(lambda: slices("back") == [])


def test_a_restarted_controller_finds_its_slices_again(
    cluster: LocalCluster, core: client.CoreV1Api, slices: Any, endpoint_names: Any
) -> None:
    core.create_namespaced_pod(NS, pod("again-1", {"app": "again"}))
    core.create_namespaced_service(NS, service("again", {"app": "again"}))
    wait_for(lambda: endpoint_names("again") == ["again-1"])
    before = slices("again")
    controller = EndpointsController(cluster.store)
    cluster.call(controller.reconcile, NS, "again")
    assert slices("again") == before


def test_kubectl_lists_endpointslices_with_their_columns(
    core: client.CoreV1Api, slices: Any, endpoint_names: Any, kubectl: Kubectl
) -> None:
    for name in ("k-1", "k-2", "k-3", "k-4"):
        core.create_namespaced_pod(NS, pod(name, {"app": "k"}))
    core.create_namespaced_service(NS, service("k", {"app": "k"}))
    wait_for(lambda: len(endpoint_names("k")) == 4)
    (found,) = slices("k")
    output = kubectl("get", "endpointslices", "-l", f"{SERVICE_LABEL}=k").stdout.splitlines()
    assert output[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    row = output[1].split(None, 3)
    assert row[:3] == [found["metadata"]["name"], "IPv4", "8080"]
    assert row[3].startswith("127.0.0.1,127.0.0.1,127.0.0.1 + 1 more...")
    described = kubectl("describe", "service", "k").stdout
    assert "Endpoints:" in described and "127.0.0.1:8080" in described
