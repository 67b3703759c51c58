"""The kubelet's heartbeat: the node Lease in kube-node-lease and the Node's conditions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gyre_local.cluster import LocalCluster, wait_for
from gyre_local.kubelet.kubelet import Heartbeat


@pytest.fixture(scope="module")
def beating_cluster() -> Iterator[LocalCluster]:
    """A cluster whose kubelet renews its Lease and reports its Node every 50 ms."""
    cluster = LocalCluster()
    cluster.kubelet.heartbeat = Heartbeat(lease_period=0.05, status_period=0.05)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _lease(cluster: LocalCluster) -> Any:
    api = client.CoordinationV1Api(cluster.api_client())
    return wait_for(lambda: _read_lease(api))


def _read_lease(api: client.CoordinationV1Api) -> Any:
    try:
        return api.read_namespaced_lease("local", "kube-node-lease")
    except client.ApiException as error:
        if error.status != 404:
            raise
        return None


def test_the_kubelet_holds_a_lease_owned_by_its_node(beating_cluster: LocalCluster) -> None:
    lease = _lease(beating_cluster)
    node = client.CoreV1Api(beating_cluster.api_client()).read_node("local")
    assert lease.spec.holder_identity == "local"
    assert lease.spec.lease_duration_seconds == 40
    [owner] = lease.metadata.owner_references
    assert (owner.api_version, owner.kind, owner.name, owner.uid) == (
        "v1",
        "Node",
        "local",
        node.metadata.uid,
    )


def test_the_lease_and_the_node_heartbeat_are_renewed(beating_cluster: LocalCluster) -> None:
    core = client.CoreV1Api(beating_cluster.api_client())
    first_renewal = _lease(beating_cluster).spec.renew_time
    first_beat = _ready_condition(core).last_heartbeat_time
    wait_for(lambda: _lease(beating_cluster).spec.renew_time > first_renewal)
    wait_for(lambda: _ready_condition(core).last_heartbeat_time > first_beat, timeout=5)


def _ready_condition(core: client.CoreV1Api) -> Any:
    conditions = core.read_node_status("local").status.conditions
    return next(c for c in conditions if c.type == "Ready")


def test_the_node_lease_namespace_is_a_system_namespace(beating_cluster: LocalCluster) -> None:
    namespace = client.CoreV1Api(beating_cluster.api_client()).read_namespace("kube-node-lease")
    assert namespace.metadata.labels == {"kubernetes.io/metadata.name": "kube-node-lease"}
