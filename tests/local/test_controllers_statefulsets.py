"""The StatefulSet controller against the local cluster (simulated kubelet), driven partly
with kubectl itself."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubectl_runner import Kubectl, kubectl_runner
from kubernetes import client

from gyre_local.cluster import LocalCluster, wait_for
from gyre_local.kubelet.kubelet import Behaviour

pytestmark = pytest.mark.cluster
NS = "default"


@pytest.fixture(scope="module")
def kubectl(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return kubectl_runner(cluster.kubeconfig_path, tmp_path_factory.mktemp("kubecache"))


def stateful_set(name: str, replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "db:1"}]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
            **spec,
        },
    }


def apply(kubectl: Kubectl, *documents: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))


def pods(core: client.CoreV1Api, name: str) -> dict[str, Any]:
    found = core.list_namespaced_pod(NS, label_selector=f"app={name}").items
    return {p.metadata.name: p for p in found if p.metadata.deletion_timestamp is None}


def events(core: client.CoreV1Api, name: str, reason: str) -> list[str]:
    """The messages of a StatefulSet's events of one reason, in the order they were recorded
    (event names end in a nanosecond stamp)."""
    selector = f"involvedObject.kind=StatefulSet,involvedObject.name={name},reason={reason}"
    found = core.list_namespaced_event(NS, field_selector=selector).items
    return [e.message for e in sorted(found, key=lambda e: e.metadata.name)]


def test_ordinals_identities_claims_and_status(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    apply(kubectl, stateful_set("web"))
    done = kubectl("rollout", "status", "statefulset/web", "--timeout=30s").stdout
    assert done.strip() == "partitioned roll out complete: 3 new pods have been updated..."
    found = pods(core, "web")
    assert sorted(found) == ["web-0", "web-1", "web-2"]
    statefulset = apps.read_namespaced_stateful_set("web", NS)
    status = statefulset.status
    revision = status.update_revision
    assert revision.startswith("web-") and status.current_revision == revision
    assert (
        status.replicas,
        status.ready_replicas,
        status.current_replicas,
        status.updated_replicas,
        status.available_replicas,
        status.observed_generation,
    ) == (3, 3, 3, 3, 3, 1)
    for ordinal in range(3):
        pod = found[f"web-{ordinal}"]
        assert pod.metadata.labels == {
            "app": "web",
            "statefulset.kubernetes.io/pod-name": f"web-{ordinal}",
            "apps.kubernetes.io/pod-index": str(ordinal),
            "controller-revision-hash": revision,
        }
        assert (pod.spec.hostname, pod.spec.subdomain) == (f"web-{ordinal}", "web")
        (owner,) = pod.metadata.owner_references
        assert (owner.kind, owner.name, owner.controller) == ("StatefulSet", "web", True)
        claim_volume = next(v for v in pod.spec.volumes if v.name == "data")
        assert claim_volume.persistent_volume_claim.claim_name == f"data-web-{ordinal}"
        claim = core.read_namespaced_persistent_volume_claim(f"data-web-{ordinal}", NS)
        assert claim.metadata.labels == {"app": "web"}
        assert claim.metadata.owner_references is None
    # OrderedReady: each pod was created only once the one before it was Ready.
    created = events(core, "web", "SuccessfulCreate")
    assert [m for m in created if m.startswith("create Pod")] == [
        f"create Pod web-{i} in StatefulSet web successful" for i in range(3)
    ]
    assert "create Claim data-web-0 Pod web-0 in StatefulSet web success" in created
    for earlier, later in (("web-0", "web-1"), ("web-1", "web-2")):
        ready = next(c for c in found[earlier].status.conditions if c.type == "Ready")
        assert ready.last_transition_time <= found[later].metadata.creation_timestamp


def test_kube_apiserver_defaults_and_columns(apps: client.AppsV1Api, kubectl: Kubectl) -> None:
    apply(kubectl, stateful_set("cols", replicas=1))
    kubectl("rollout", "status", "sts/cols", "--timeout=30s")
    spec = apps.read_namespaced_stateful_set("cols", NS).to_dict()["spec"]
    assert spec["pod_management_policy"] == "OrderedReady"
    assert spec["update_strategy"] == {
        "type": "RollingUpdate",
        "rolling_update": {"partition": 0, "max_unavailable": None},
    }
    assert spec["revision_history_limit"] == 10
    assert spec["persistent_volume_claim_retention_policy"] == {
        "when_deleted": "Retain",
        "when_scaled": "Retain",
    }
    template = spec["volume_claim_templates"][0]
    assert (template["api_version"], template["kind"]) == ("v1", "PersistentVolumeClaim")
    assert template["spec"]["volume_mode"] == "Filesystem"
    lines = kubectl("get", "sts", "cols", "-o", "wide").stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]
    cells = lines[1].split()
    assert (cells[0], cells[1], cells[3], cells[4]) == ("cols", "1/1", "main", "db:1")


def test_scaling_down_goes_from_the_highest_ordinal_and_keeps_claims(
    core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    apply(kubectl, stateful_set("shrink"))
    kubectl("rollout", "status", "sts/shrink", "--timeout=30s")
    kubectl("scale", "sts/shrink", "--replicas=1")
    wait_for(lambda: sorted(pods(core, "shrink")) == ["shrink-0"])
    assert [m for m in events(core, "shrink", "SuccessfulDelete")] == [
        "delete Pod shrink-2 in StatefulSet shrink successful",
        "delete Pod shrink-1 in StatefulSet shrink successful",
    ]
    claims = core.list_namespaced_persistent_volume_claim(NS, label_selector="app=shrink").items
    assert sorted(c.metadata.name for c in claims) == [
        "data-shrink-0",
        "data-shrink-1",
        "data-shrink-2",
    ]
    kubectl("scale", "sts/shrink", "--replicas=2")
    wait_for(lambda: sorted(pods(core, "shrink")) == ["shrink-0", "shrink-1"])
    volume = next(v for v in pods(core, "shrink")["shrink-1"].spec.volumes if v.name == "data")
    assert volume.persistent_volume_claim.claim_name == "data-shrink-1"


def test_a_rolling_update_replaces_pods_from_the_highest_ordinal(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    apply(kubectl, stateful_set("roll"))
    kubectl("rollout", "status", "sts/roll", "--timeout=30s")
    first = apps.read_namespaced_stateful_set("roll", NS).status.update_revision
    kubectl("set", "image", "sts/roll", "main=db:2")
    kubectl("rollout", "status", "sts/roll", "--timeout=30s")

    def rolled() -> Any:
        status = apps.read_namespaced_stateful_set("roll", NS).status
        return status if status.current_revision == status.update_revision != first else None

    status = wait_for(rolled)
    assert status.updated_replicas == 3
    assert {p.spec.containers[0].image for p in pods(core, "roll").values()} == {"db:2"}
    assert events(core, "roll", "SuccessfulDelete") == [
        f"delete Pod roll-{i} in StatefulSet roll successful" for i in (2, 1, 0)
    ]
    history = kubectl("rollout", "history", "sts/roll").stdout.split()
    assert history[-4:] == ["1", "<none>", "2", "<none>"]
    revisions = kubectl("get", "controllerrevisions", "-l", "app=roll").stdout.splitlines()
    assert revisions[0].split() == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert sorted(line.split()[1:3][1] for line in revisions[1:]) == ["1", "2"]
    assert {line.split()[1] for line in revisions[1:]} == {"statefulset.apps/roll"}
    # Undo: the first template comes back as the newest revision.
    kubectl("rollout", "undo", "sts/roll")
    kubectl("rollout", "status", "sts/roll", "--timeout=30s")
    wait_for(lambda: {p.spec.containers[0].image for p in pods(core, "roll").values()} == {"db:1"})
    history = kubectl("rollout", "history", "sts/roll").stdout.split()
    assert history[-4:] == ["2", "<none>", "3", "<none>"]


def test_on_delete_leaves_pods_until_they_are_deleted(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    apply(kubectl, stateful_set("manual", replicas=2, updateStrategy={"type": "OnDelete"}))
    kubectl("rollout", "status", "sts/manual", "--timeout=30s", check=False)
    wait_for(lambda: len(pods(core, "manual")) == 2)
    kubectl("set", "image", "sts/manual", "main=db:2")
    wait_for(
        lambda: (
            (s := apps.read_namespaced_stateful_set("manual", NS).status).observed_generation == 2
            and s.current_revision != s.update_revision
        )
    )
    assert {p.spec.containers[0].image for p in pods(core, "manual").values()} == {"db:1"}
    core.delete_namespaced_pod("manual-1", NS)
    wait_for(
        lambda: (
            "manual-1" in (found := pods(core, "manual"))
            and found["manual-1"].spec.containers[0].image == "db:2"
        )
    )
    assert pods(core, "manual")["manual-0"].spec.containers[0].image == "db:1"


def test_parallel_creates_every_pod_without_waiting_for_readiness(
    cluster: LocalCluster, core: client.CoreV1Api, apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    cluster.simulation.add(Behaviour(ready=False), labels={"app": "cold"})
    cluster.simulation.add(Behaviour(ready=False), labels={"app": "together"})
    apply(
        kubectl,
        stateful_set("cold"),
        stateful_set("together", podManagementPolicy="Parallel"),
    )
    wait_for(lambda: sorted(pods(core, "together")) == ["together-0", "together-1", "together-2"])
    wait_for(lambda: apps.read_namespaced_stateful_set("cold", NS).status.replicas == 1)
    # OrderedReady: cold-0 never becomes Ready, so cold-1 is never made.
    assert sorted(pods(core, "cold")) == ["cold-0"]
    waiting = kubectl("rollout", "status", "sts/cold", "--watch=false").stdout
    assert waiting.strip() == "Waiting for 3 pods to be ready..."


def test_a_failed_pod_is_made_again(
    cluster: LocalCluster, core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    apply(kubectl, stateful_set("phoenix", replicas=1))
    kubectl("rollout", "status", "sts/phoenix", "--timeout=30s")
    first = pods(core, "phoenix")["phoenix-0"].metadata.uid
    status = {"phase": "Failed", "conditions": [{"type": "Ready", "status": "False"}]}
    core.patch_namespaced_pod_status("phoenix-0", NS, {"status": status})
    wait_for(
        lambda: (
            (found := pods(core, "phoenix").get("phoenix-0")) is not None
            and found.metadata.uid != first
        )
    )
