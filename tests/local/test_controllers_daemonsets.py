"""The DaemonSet controller against the local cluster's one Node (simulated kubelet), driven
partly with kubectl itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubectl_runner import Kubectl, kubectl_runner
from kubernetes import client

from gyre_local.cluster import LocalCluster, wait_for

pytestmark = pytest.mark.cluster
NS = "default"


@pytest.fixture(scope="module")
def kubectl(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return kubectl_runner(cluster.kubeconfig_path, tmp_path_factory.mktemp("kubecache"))


def daemon_set(name: str, **pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "agent:1"}], **pod_spec},
            },
        },
    }


def apply(kubectl: Kubectl, *documents: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))


def pods(core: client.CoreV1Api, name: str) -> list[Any]:
    found = core.list_namespaced_pod(NS, label_selector=f"app={name}").items
    return [p for p in found if p.metadata.deletion_timestamp is None]


def observed(apps: client.AppsV1Api, name: str) -> Any:
    """The DaemonSet's status once it reflects its current generation."""
    daemonset = apps.read_namespaced_daemon_set(name, NS)
    status = daemonset.status
    return status if status.observed_generation == daemonset.metadata.generation else None


@pytest.fixture
def node_spec(core: client.CoreV1Api) -> Iterator[None]:
    """Put the Node's spec back after a test changes it."""
    yield
    core.patch_node("local", {"spec": {"taints": None, "unschedulable": None}})


def test_one_pod_on_the_node_with_daemon_tolerations_and_affinity(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    apply(kubectl, daemon_set("agent"))
    done = kubectl("rollout", "status", "daemonset/agent", "--timeout=30s").stdout
    assert done.strip() == 'daemon set "agent" successfully rolled out'
    (pod,) = pods(core, "agent")
    assert pod.metadata.generate_name == "agent-"
    labels = pod.metadata.labels
    assert labels["pod-template-generation"] == "1"
    revision_hash = labels["controller-revision-hash"]
    (revision,) = apps.list_namespaced_controller_revision(NS, label_selector="app=agent").items
    assert revision.metadata.name == f"agent-{revision_hash}" and revision.revision == 1
    (owner,) = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == ("DaemonSet", "agent", True)
    required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    (term,) = required.node_selector_terms
    assert [(f.key, f.operator, f.values) for f in term.match_fields] == [
        ("metadata.name", "In", ["local"])
    ]
    assert {(t.key, t.effect) for t in pod.spec.tolerations} == {
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    }
    assert pod.spec.node_name == "local"
    status = wait_for(lambda: observed(apps, "agent"))
    assert (
        status.desired_number_scheduled,
        status.current_number_scheduled,
        status.number_ready,
        status.updated_number_scheduled,
        status.number_available,
        status.number_misscheduled,
        status.number_unavailable,
    ) == (1, 1, 1, 1, 1, 0, None)


def test_kube_apiserver_defaults_and_columns(apps: client.AppsV1Api, kubectl: Kubectl) -> None:
    apply(kubectl, daemon_set("cols", nodeSelector={"kubernetes.io/os": "linux"}))
    kubectl("rollout", "status", "ds/cols", "--timeout=30s")
    spec = apps.read_namespaced_daemon_set("cols", NS).spec
    assert spec.update_strategy.type == "RollingUpdate"
    rolling = spec.update_strategy.rolling_update
    assert (rolling.max_unavailable, rolling.max_surge) == (1, 0)
    assert spec.revision_history_limit == 10
    lines = kubectl("get", "ds", "cols", "-o", "wide").stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "DESIRED",
        "CURRENT",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "NODE",
        "SELECTOR",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    cells = lines[1].split()
    assert cells[:7] == ["cols", "1", "1", "1", "1", "1", "kubernetes.io/os=linux"]
    assert cells[-3:] == ["main", "agent:1", "app=cols"]


def test_a_node_selector_that_matches_no_node_places_no_pod(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    apply(kubectl, daemon_set("gpu", nodeSelector={"accelerator": "gpu"}))
    status = wait_for(lambda: observed(apps, "gpu"))
    assert (status.desired_number_scheduled, status.current_number_scheduled) == (0, 0)
    assert pods(core, "gpu") == []
    core.patch_node("local", {"metadata": {"labels": {"accelerator": "gpu"}}})
    try:
        wait_for(lambda: len(pods(core, "gpu")) == 1)
    finally:
        core.patch_node("local", {"metadata": {"labels": {"accelerator": None}}})
    wait_for(lambda: pods(core, "gpu") == [])


def required_affinity(*expressions: dict[str, Any]) -> dict[str, Any]:
    term = {"matchExpressions": list(expressions)}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }


def test_the_template_node_affinity_decides_as_the_node_selector_does(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    linux = {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}
    workers_only = {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}
    apply(
        kubectl,
        daemon_set("anywhere", affinity=required_affinity(linux)),
        daemon_set("workers", affinity=required_affinity(linux, workers_only)),
    )
    wait_for(lambda: len(pods(core, "anywhere")) == 1)
    status = wait_for(lambda: observed(apps, "workers"))
    assert status.desired_number_scheduled == 0
    assert pods(core, "workers") == []
    # The pod's own affinity pins it to its node in place of the template's terms.
    (placed,) = pods(core, "anywhere")
    required = (
        placed.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    )
    (term,) = required.node_selector_terms
    assert term.match_expressions is None and term.match_fields[0].values == ["local"]


@pytest.mark.usefixtures("node_spec")
def test_a_cordoned_node_keeps_daemon_pods_but_an_untolerated_taint_does_not(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    apply(
        kubectl,
        daemon_set("plain"),
        daemon_set(
            "tolerant",
            tolerations=[{"key": "dedicated", "operator": "Equal", "value": "ml"}],
        ),
    )
    wait_for(lambda: len(pods(core, "plain")) == len(pods(core, "tolerant")) == 1)
    cordon = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    core.patch_node("local", {"spec": {"unschedulable": True, "taints": [cordon]}})
    dedicated = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}
    core.patch_node("local", {"spec": {"taints": [cordon, dedicated]}})
    wait_for(lambda: pods(core, "plain") == [])
    assert len(pods(core, "tolerant")) == 1
    status = wait_for(lambda: observed(apps, "plain"))
    assert status.desired_number_scheduled == 0


def test_a_template_change_rolls_the_pod(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    apply(kubectl, daemon_set("rolling"))
    kubectl("rollout", "status", "ds/rolling", "--timeout=30s")
    (before,) = pods(core, "rolling")
    kubectl("set", "image", "ds/rolling", "main=agent:2")
    kubectl("rollout", "status", "ds/rolling", "--timeout=30s")
    wait_for(lambda: [p.spec.containers[0].image for p in pods(core, "rolling")] == ["agent:2"])
    (after,) = pods(core, "rolling")
    assert after.metadata.labels["pod-template-generation"] == "2"
    assert (
        after.metadata.labels["controller-revision-hash"]
        != (before.metadata.labels["controller-revision-hash"])
    )
    history = kubectl("rollout", "history", "ds/rolling").stdout.split()
    assert history[-4:] == ["1", "<none>", "2", "<none>"]


def test_a_surge_starts_the_new_pod_before_the_old_one_goes(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    surging = daemon_set("surge")
    surging["spec"]["updateStrategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    apply(kubectl, surging)
    kubectl("rollout", "status", "ds/surge", "--timeout=30s")
    kubectl("set", "image", "ds/surge", "main=agent:2")
    kubectl("rollout", "status", "ds/surge", "--timeout=30s")
    wait_for(lambda: [p.spec.containers[0].image for p in pods(core, "surge")] == ["agent:2"])
    deleted = core.list_namespaced_event(
        NS, field_selector="involvedObject.name=surge,reason=SuccessfulDelete"
    ).items
    created = core.list_namespaced_event(
        NS, field_selector="involvedObject.name=surge,reason=SuccessfulCreate"
    ).items
    # Two pods created (old, then new) before the old one was deleted.
    assert len(created) == 2 and len(deleted) == 1
    assert max(e.metadata.name for e in created) < deleted[0].metadata.name


def test_on_delete_leaves_the_pod_until_it_is_deleted(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    manual = daemon_set("manual")
    manual["spec"]["updateStrategy"] = {"type": "OnDelete"}
    apply(kubectl, manual)
    wait_for(lambda: len(pods(core, "manual")) == 1)
    kubectl("set", "image", "ds/manual", "main=agent:2")
    status = wait_for(lambda: observed(apps, "manual"))
    assert status.updated_number_scheduled is None
    (old,) = pods(core, "manual")
    assert old.spec.containers[0].image == "agent:1"
    core.delete_namespaced_pod(old.metadata.name, NS)
    wait_for(lambda: [p.spec.containers[0].image for p in pods(core, "manual")] == ["agent:2"])
