"""The Deployment and ReplicaSet controllers against the local cluster (simulated kubelet)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from gyre_local.cluster import LocalCluster, wait_for
from gyre_local.controllers.deployments import template_hash
from gyre_local.kubelet.kubelet import Behaviour

pytestmark = pytest.mark.cluster
NS = "default"


def deployment(name: str, replicas: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "server:1"}]},
            },
            **spec,
        },
    }


def settled(apps: client.AppsV1Api, name: str, replicas: int) -> bool:
    found = apps.read_namespaced_deployment(name, NS)
    status = found.status
    progressing = next((c for c in status.conditions or [] if c.type == "Progressing"), None)
    return (
        status.observed_generation == found.metadata.generation
        and (status.updated_replicas or 0) == replicas
        and (status.available_replicas or 0) == replicas
        and (status.replicas or 0) == replicas
        and progressing is not None
        and progressing.reason == "NewReplicaSetAvailable"
    )


def replica_sets(apps: client.AppsV1Api, name: str) -> list[Any]:
    return apps.list_namespaced_replica_set(NS, label_selector=f"app={name}").items


def live_pods(core: client.CoreV1Api, name: str) -> list[Any]:
    pods = core.list_namespaced_pod(NS, label_selector=f"app={name}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def set_image(apps: client.AppsV1Api, name: str, image: str) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}}
    apps.patch_namespaced_deployment(name, NS, patch)


def test_deployment_creates_a_hashed_replica_set_and_ready_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    created = apps.create_namespaced_deployment(NS, deployment("web", replicas=3))
    wait_for(lambda: settled(apps, "web", 3))
    (rs,) = replica_sets(apps, "web")
    stored = json.loads(apps.read_namespaced_deployment("web", NS, _preload_content=False).data)
    template = stored["spec"]["template"]
    assert template["spec"]["dnsPolicy"] == "ClusterFirst"
    assert template["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    # As the Deployment controller does: the hash is of the template as stored, defaulted.
    pod_hash = template_hash(template)
    assert pod_hash != template_hash(deployment("web")["spec"]["template"])
    assert rs.metadata.name == f"web-{pod_hash}"
    assert rs.metadata.labels["pod-template-hash"] == pod_hash
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert rs.metadata.owner_references[0].uid == created.metadata.uid
    assert (rs.status.replicas, rs.status.ready_replicas, rs.status.available_replicas) == (3, 3, 3)
    pods = live_pods(core, "web")
    assert len(pods) == 3
    for pod in pods:
        assert pod.metadata.name.startswith(f"{rs.metadata.name}-")
        assert pod.metadata.labels["pod-template-hash"] == pod_hash
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
    found = apps.read_namespaced_deployment("web", NS)
    assert found.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    available = next(c for c in found.status.conditions if c.type == "Available")
    assert (available.status, available.reason) == ("True", "MinimumReplicasAvailable")
    assert not found.status.unavailable_replicas


def test_scaling_up_and_down(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("scaled", replicas=1))
    wait_for(lambda: settled(apps, "scaled", 1))
    apps.patch_namespaced_deployment_scale("scaled", NS, {"spec": {"replicas": 4}})
    wait_for(lambda: settled(apps, "scaled", 4))
    assert len(live_pods(core, "scaled")) == 4
    apps.patch_namespaced_deployment("scaled", NS, {"spec": {"replicas": 2}})
    wait_for(lambda: settled(apps, "scaled", 2) and len(live_pods(core, "scaled")) == 2)


def test_rolling_update_scales_the_old_replica_set_to_zero(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment(NS, deployment("rolling", replicas=4))
    wait_for(lambda: settled(apps, "rolling", 4))
    set_image(apps, "rolling", "server:2")
    most = 0

    def rolled() -> bool:
        nonlocal most
        most = max(most, len(live_pods(core, "rolling")))
        return settled(apps, "rolling", 4)

    wait_for(rolled)
    assert most <= 5  # replicas + 25% surge
    by_revision = {
        rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs
        for rs in replica_sets(apps, "rolling")
    }
    assert sorted(by_revision) == ["1", "2"]
    assert by_revision["1"].spec.replicas == 0
    assert by_revision["2"].spec.replicas == 4
    wait_for(
        lambda: {p.spec.containers[0].image for p in live_pods(core, "rolling")} == {"server:2"}
    )
    found = apps.read_namespaced_deployment("rolling", NS)
    assert found.metadata.annotations["deployment.kubernetes.io/revision"] == "2"


def test_revision_history_limit_prunes_old_replica_sets(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("pruned", revisionHistoryLimit=1))
    wait_for(lambda: settled(apps, "pruned", 2))
    for version in ("2", "3", "4"):
        set_image(apps, "pruned", f"server:{version}")
        wait_for(lambda: settled(apps, "pruned", 2))
    revisions = wait_for(
        lambda: (
            len(replica_sets(apps, "pruned")) == 2
            and sorted(
                rs.metadata.annotations["deployment.kubernetes.io/revision"]
                for rs in replica_sets(apps, "pruned")
            )
        )
    )
    assert revisions == ["3", "4"]


def test_recreate_strategy_replaces_all_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    spec = deployment("recreated", replicas=2, strategy={"type": "Recreate"})
    apps.create_namespaced_deployment(NS, spec)
    wait_for(lambda: settled(apps, "recreated", 2))
    set_image(apps, "recreated", "server:2")
    wait_for(lambda: settled(apps, "recreated", 2))
    assert {p.spec.containers[0].image for p in live_pods(core, "recreated")} == {"server:2"}


def test_unready_pods_leave_the_deployment_unavailable(
    cluster: LocalCluster, apps: client.AppsV1Api
) -> None:
    cluster.simulation.add(Behaviour(ready=False), labels={"app": "unready"})
    apps.create_namespaced_deployment(NS, deployment("unready", replicas=2))

    def unavailable() -> Any:
        status = apps.read_namespaced_deployment("unready", NS).status
        available = next((c for c in status.conditions or [] if c.type == "Available"), None)
        return status.replicas == 2 and available is not None and available.status == "False"

    wait_for(unavailable)
    status = apps.read_namespaced_deployment("unready", NS).status
    assert status.unavailable_replicas == 2
    assert not status.ready_replicas
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert progressing.reason == "ReplicaSetUpdated"


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_deleting_a_deployment_collects_its_replica_sets_and_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api, policy: str
) -> None:
    name = f"doomed-{policy.lower()}"
    apps.create_namespaced_deployment(NS, deployment(name))
    wait_for(lambda: settled(apps, name, 2))
    apps.delete_namespaced_deployment(name, NS, propagation_policy=policy)
    wait_for(lambda: not replica_sets(apps, name) and not live_pods(core, name))
    wait_for(lambda: not core.list_namespaced_pod(NS, label_selector=f"app={name}").items)


def test_a_stuck_rollout_exceeds_its_progress_deadline(
    cluster: LocalCluster, apps: client.AppsV1Api
) -> None:
    cluster.simulation.add(Behaviour(crash_loop=True), labels={"app": "stuck"})
    apps.create_namespaced_deployment(NS, deployment("stuck", progressDeadlineSeconds=1))

    def timed_out() -> Any:
        status = apps.read_namespaced_deployment("stuck", NS).status
        progressing = next((c for c in status.conditions or [] if c.type == "Progressing"), None)
        return progressing is not None and progressing.status == "False" and progressing

    progressing = wait_for(timed_out)
    assert progressing.reason == "ProgressDeadlineExceeded"
    assert progressing.message.endswith("has timed out progressing.")
