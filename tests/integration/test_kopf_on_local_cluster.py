"""A kopf operator runs against the local cluster: finalizers, timers, daemons, status, children."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
from kubernetes import client

from gyre_local.cluster import LocalCluster, running_cluster, wait_for

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "test.gyre.dev", "v1", "widgets"
WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "kind": "Widget",
            "plural": PLURAL,
            "singular": "widget",
            "listKind": "WidgetList",
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def build_registry(cluster: LocalCluster, seen: dict[str, Any]) -> kopf.OperatorRegistry:
    """A test operator: a child ConfigMap per Widget, a timer, a daemon and a delete handler."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=cluster.url, ca_path=str(cluster.ca_path))

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.watching.server_timeout = 10
        settings.persistence.finalizer = "test.gyre.dev/finalizer"

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="create_child")
    def create_child(body: kopf.Body, spec: kopf.Spec, **_: Any) -> dict[str, Any]:
        child = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{body.metadata.name}-child"},
            "data": {"size": str(spec["size"])},
        }
        kopf.adopt(child, owner=body)
        client.CoreV1Api(cluster.api_client()).create_namespaced_config_map(
            body.metadata.namespace, child
        )
        return {"child": child["metadata"]["name"]}

    @kopf.timer(GROUP, VERSION, PLURAL, interval=0.2, registry=registry)
    def tick(patch: kopf.Patch, status: kopf.Status, **_: Any) -> None:
        patch.status["ticks"] = int(status.get("ticks", 0)) + 1

    @kopf.daemon(GROUP, VERSION, PLURAL, registry=registry, cancellation_timeout=1)
    async def watch_size(name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
        seen.setdefault("daemons", set()).add(name)
        try:
            while not stopped:
                await asyncio.sleep(0.05)
        finally:
            seen.setdefault("stopped", set()).add(name)

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def delete(name: str, **_: Any) -> None:
        seen.setdefault("deleted", set()).add(name)

    return registry


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with running_cluster(kubelet="simulated") as running:
        client.ApiextensionsV1Api(running.api_client()).create_custom_resource_definition(
            WIDGET_CRD
        )
        yield running


def test_kopf_operator_lifecycle(cluster: LocalCluster) -> None:
    seen: dict[str, Any] = {}
    stop = threading.Event()
    ready = threading.Event()
    registry = build_registry(cluster, seen)

    def run() -> None:
        asyncio.run(
            kopf.operator(
                registry=registry,
                clusterwide=True,
                standalone=True,
                stop_flag=stop,
                ready_flag=ready,
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(15), "the operator did not start"
        api = client.CustomObjectsApi(cluster.api_client())
        core = client.CoreV1Api(cluster.api_client())
        widget = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
        }
        api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget)

        def get() -> dict[str, Any]:
            got: dict[str, Any] = api.get_namespaced_custom_object(
                GROUP, VERSION, "default", PLURAL, "w1"
            )
            return got

        # The create handler's result lands in status, the child is adopted.
        wait_for(lambda: get().get("status", {}).get("create_child", {}).get("child"))
        child = core.read_namespaced_config_map("w1-child", "default")
        owner = child.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.controller) == ("Widget", "w1", True)
        assert "test.gyre.dev/finalizer" in get()["metadata"]["finalizers"]
        # The timer keeps patching status; the daemon runs.
        wait_for(lambda: get().get("status", {}).get("ticks", 0) >= 3)
        wait_for(lambda: "w1" in seen.get("daemons", set()))

        api.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1")
        wait_for(lambda: "w1" in seen.get("deleted", set()))
        wait_for(lambda: "w1" in seen.get("stopped", set()))

        def gone(read: Any, *args: str) -> bool:
            try:
                read(*args)
            except client.ApiException as error:
                return error.status == 404
            return False

        # The finalizer is released, then garbage collection removes the child.
        wait_for(
            lambda: gone(api.get_namespaced_custom_object, GROUP, VERSION, "default", PLURAL, "w1")
        )
        wait_for(lambda: gone(core.read_namespaced_config_map, "w1-child", "default"))
    finally:
        stop.set()
        thread.join(15)


CLUSTER_PEERING_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
    "spec": {
        "group": "kopf.dev",
        "scope": "Cluster",
        "names": {"kind": "ClusterKopfPeering", "plural": "clusterkopfpeerings"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_kopf_peering_registers_the_operator(cluster: LocalCluster) -> None:
    client.ApiextensionsV1Api(cluster.api_client()).create_custom_resource_definition(
        CLUSTER_PEERING_CRD
    )
    api = client.CustomObjectsApi(cluster.api_client())
    api.create_cluster_custom_object(
        "kopf.dev",
        "v1",
        "clusterkopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "gyre"}},
    )
    stop = threading.Event()
    registry = build_registry(cluster, {})

    def run() -> None:
        asyncio.run(
            kopf.operator(
                registry=registry,
                clusterwide=True,
                peering_name="gyre",
                priority=7,
                stop_flag=stop,
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:

        def peers() -> dict[str, Any]:
            peering: dict[str, Any] = api.get_cluster_custom_object(
                "kopf.dev", "v1", "clusterkopfpeerings", "gyre"
            )
            return dict(peering.get("status") or {})

        registered = wait_for(peers)
        assert [peer["priority"] for peer in registered.values()] == [7]
    finally:
        stop.set()
        thread.join(15)
