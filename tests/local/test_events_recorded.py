"""The Events the kubelet, the scheduler and the controllers record, as `kubectl describe`
shows them, on the simulated and the process kubelet."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gyre_local.cluster import LocalCluster, running_cluster, wait_for
from gyre_local.controllers.events import EventRecorder
from gyre_local.kubelet.state import Backoff
from gyre_local.store.store import Store

KUBECTL = "/usr/bin/kubectl"
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which(KUBECTL) is None, reason="kubectl is not installed"),
]
NS = "default"
PYTHON = "local/python:3.11"
Kubectl = Callable[..., str]
EventRow = tuple[str, str, str, str, str]


@pytest.fixture(scope="module", params=["simulated", "process"])
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """A cluster per kubelet mode, with fast crash-loop back-off."""
    with running_cluster(
        kubelet=request.param,
        image_map={"local/python": sys.executable},
        restart_backoff=Backoff(0.05, 0.2),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def kubectl(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """Run kubectl against the module's cluster; its stdout (a failure fails the test)."""
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig_path),
        "KUBECACHEDIR": str(tmp_path_factory.mktemp("kubecache")),
    }

    def run(*args: str) -> str:
        result = subprocess.run(
            [KUBECTL, *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    return run


def container(cluster: LocalCluster, name: str, *, exit_code: int | None = None) -> dict[str, Any]:
    """A container running until stopped, or exiting at once with exit_code, in either mode."""
    if cluster.kubelet.mode == "simulated":
        return {"name": name, "image": "busybox"}
    script = (
        "import time; time.sleep(600)" if exit_code is None else f"raise SystemExit({exit_code})"
    )
    return {"name": name, "image": PYTHON, "command": ["python", "-c", script]}


def pod_template(
    cluster: LocalCluster, *, exit_code: int | None = None, restart_policy: str = "Always"
) -> dict[str, Any]:
    """A pod template of one container "app"; simulated pods get the same fate by annotation."""
    annotations = {}
    if cluster.kubelet.mode == "simulated" and exit_code is None:
        # Simulated pods of a Job succeed by default: this one runs as long as a process one.
        annotations = {"local.gyre.dev/simulate-duration": "10m"}
    elif cluster.kubelet.mode == "simulated":
        annotations = {
            "local.gyre.dev/simulate-exit-code": str(exit_code),
            "local.gyre.dev/simulate-duration": "0.05",
        }
    return {
        "metadata": {"labels": {"app": "events"}, "annotations": annotations},
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [container(cluster, "app", exit_code=exit_code)],
        },
    }


def described_events(text: str) -> list[EventRow]:
    """The rows (type, reason, age, from, message) of the Events table of `kubectl describe`."""
    table = text.split("\nEvents:", 1)[1].splitlines()[3:]
    return [tuple(re.split(r"\s{2,}", line.strip(), maxsplit=4)) for line in table if line.strip()]  # type: ignore[misc]


def described(kubectl: Kubectl, kind: str, name: str) -> list[tuple[str, str, str, str]]:
    """(type, reason, from, message) of each event `kubectl describe KIND NAME` shows."""
    return [(k, r, s, m) for k, r, _, s, m in described_events(kubectl("describe", kind, name))]


def events_of(cluster: LocalCluster, uid: str, reason: str) -> list[Any]:
    """The core v1 Events of an involved object's uid with a reason."""
    core = client.CoreV1Api(cluster.api_client())
    selector = f"involvedObject.uid={uid},reason={reason}"
    return list(core.list_namespaced_event(NS, field_selector=selector).items)


def test_pod_lifecycle_events(cluster: LocalCluster, kubectl: Kubectl) -> None:
    core = client.CoreV1Api(cluster.api_client())
    pod = {"metadata": {"name": "web"}, "spec": {"containers": [container(cluster, "app")]}}
    created = core.create_namespaced_pod(NS, pod)
    wait_for(lambda: core.read_namespaced_pod("web", NS).status.phase == "Running")
    image = pod["spec"]["containers"][0]["image"]  # type: ignore[index]
    rows = described_events(kubectl("describe", "pod", "web"))
    assert [(kind, reason, source, message) for kind, reason, _, source, message in rows] == [
        ("Normal", "Scheduled", "default-scheduler", "Successfully assigned default/web to local"),
        ("Normal", "Pulled", "kubelet", f'Container image "{image}" already present on machine'),
        ("Normal", "Created", "kubelet", "Created container: app"),
        ("Normal", "Started", "kubelet", "Started container app"),
    ]
    started = events_of(cluster, created.metadata.uid, "Started")[0]
    assert re.fullmatch(r"web\.[0-9a-f]{16}", started.metadata.name)
    reference = started.involved_object
    assert (reference.api_version, reference.kind, reference.name, reference.namespace) == (
        "v1",
        "Pod",
        "web",
        NS,
    )
    assert reference.field_path == "spec.containers{app}"
    assert reference.resource_version
    assert (started.source.component, started.source.host) == ("kubelet", "local")
    assert (started.reporting_component, started.reporting_instance) == ("kubelet", "local")
    assert (started.type, started.count) == ("Normal", 1)
    assert started.first_timestamp == started.last_timestamp

    core.delete_namespaced_pod("web", NS)
    killing = wait_for(lambda: events_of(cluster, created.metadata.uid, "Killing"))
    assert [(e.type, e.message, e.involved_object.field_path) for e in killing] == [
        ("Normal", "Stopping container app", "spec.containers{app}")
    ]


def test_crash_loop_events_aggregate(cluster: LocalCluster, kubectl: Kubectl) -> None:
    core = client.CoreV1Api(cluster.api_client())
    template = pod_template(cluster, exit_code=1)
    pod = {**template, "metadata": {"name": "crasher", **template["metadata"]}}
    uid = core.create_namespaced_pod(NS, pod).metadata.uid

    def restarts() -> int:
        statuses = core.read_namespaced_pod("crasher", NS).status.container_statuses or []
        return int(statuses[0].restart_count) if statuses else 0

    wait_for(lambda: restarts() >= 3)
    back_offs = events_of(cluster, uid, "BackOff")
    assert len(back_offs) == 1
    assert back_offs[0].type == "Warning"
    assert back_offs[0].message == (
        f"Back-off restarting failed container app in pod crasher_{NS}({uid})"
    )
    assert back_offs[0].count >= 2
    assert back_offs[0].last_timestamp >= back_offs[0].first_timestamp
    started = events_of(cluster, uid, "Started")
    assert len(started) == 1 and started[0].count >= 3
    rows = {row[1]: row for row in described_events(kubectl("describe", "pod", "crasher"))}
    assert re.fullmatch(r"\S+ \(x\d+ over \S+\)", rows["BackOff"][2])
    core.delete_namespaced_pod("crasher", NS)


def test_containers_that_cannot_start(cluster: LocalCluster, kubectl: Kubectl) -> None:
    if cluster.kubelet.mode != "process":
        pytest.skip("only processes can fail to start")
    core = client.CoreV1Api(cluster.api_client())
    missing = {"name": "app", "image": PYTHON, "command": [str(Path("/nonexistent/tool"))]}
    unconfigured = {
        "name": "app",
        "image": PYTHON,
        "command": ["python", "-c", "pass"],
        "envFrom": [{"configMapRef": {"name": "absent"}}],
    }
    for name, spec in (("no-binary", missing), ("no-config", unconfigured)):
        pod = {"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [spec]}}
        core.create_namespaced_pod(NS, pod)
    uid = core.read_namespaced_pod("no-binary", NS).metadata.uid
    failed = wait_for(lambda: events_of(cluster, uid, "Failed"))
    assert failed[0].type == "Warning" and failed[0].message.startswith("Error: ")
    assert "/nonexistent/tool" in failed[0].message
    reasons = [reason for _, reason, _, _ in described(kubectl, "pod", "no-binary")]
    assert reasons == ["Scheduled", "Pulled", "Created", "Failed"]
    uid = core.read_namespaced_pod("no-config", NS).metadata.uid
    failed = wait_for(lambda: events_of(cluster, uid, "Failed"))
    assert (failed[0].type, failed[0].message) == ("Warning", 'Error: configmap "absent" not found')
    for name in ("no-binary", "no-config"):
        core.delete_namespaced_pod(name, NS)


def test_job_events(cluster: LocalCluster, kubectl: Kubectl) -> None:
    batch = client.BatchV1Api(cluster.api_client())
    done = {
        "metadata": {"name": "done"},
        "spec": {"template": pod_template(cluster, exit_code=0, restart_policy="Never")},
    }
    batch.create_namespaced_job(NS, done)
    wait_for(lambda: (batch.read_namespaced_job("done", NS).status.succeeded or 0) == 1)
    core = client.CoreV1Api(cluster.api_client())
    pod_name = core.list_namespaced_pod(NS, label_selector="job-name=done").items[0].metadata.name
    assert described(kubectl, "job", "done") == [
        ("Normal", "SuccessfulCreate", "job-controller", f"Created pod: {pod_name}"),
        ("Normal", "Completed", "job-controller", "Job completed"),
    ]

    failing = {
        "metadata": {"name": "failing"},
        "spec": {
            "backoffLimit": 0,
            "template": pod_template(cluster, exit_code=1, restart_policy="Never"),
        },
    }
    batch.create_namespaced_job(NS, failing)
    wait_for(lambda: events_of(cluster, _uid(batch, "failing"), "BackoffLimitExceeded"))
    assert (
        "Warning",
        "BackoffLimitExceeded",
        "job-controller",
        "Job has reached the specified backoff limit",
    ) in described(kubectl, "job", "failing")

    slow = {
        "metadata": {"name": "slow"},
        "spec": {
            "activeDeadlineSeconds": 1,
            "template": pod_template(cluster, restart_policy="Never"),
        },
    }
    batch.create_namespaced_job(NS, slow)
    wait_for(lambda: events_of(cluster, _uid(batch, "slow"), "DeadlineExceeded"), timeout=20)
    rows = {(k, r, m) for k, r, _, m in described(kubectl, "job", "slow")}
    created = next(m for _, r, m in rows if r == "SuccessfulCreate")
    assert ("Normal", "SuccessfulDelete", created.replace("Created", "Deleted")) in rows
    assert ("Warning", "DeadlineExceeded", "Job was active longer than specified deadline") in rows


def _uid(batch: client.BatchV1Api, name: str) -> str:
    return str(batch.read_namespaced_job(name, NS).metadata.uid)


def test_deployment_and_replicaset_events(cluster: LocalCluster, kubectl: Kubectl) -> None:
    apps = client.AppsV1Api(cluster.api_client())
    deployment = {
        "metadata": {"name": "events"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "events"}},
            "template": pod_template(cluster),
        },
    }
    apps.create_namespaced_deployment(NS, deployment)
    wait_for(lambda: apps.read_namespaced_deployment("events", NS).status.ready_replicas == 2)
    kubectl("scale", "deployment", "events", "--replicas=1")
    wait_for(lambda: apps.read_namespaced_deployment("events", NS).status.replicas == 1)
    rs = apps.list_namespaced_replica_set(NS).items[0].metadata.name
    scaling = "Normal", "ScalingReplicaSet", "deployment-controller"
    assert described(kubectl, "deployment", "events") == [
        (*scaling, f"Scaled up replica set {rs} from 0 to 2"),
        (*scaling, f"Scaled down replica set {rs} from 2 to 1"),
    ]
    rs_events = described(kubectl, "replicaset", rs)
    sources = {source for _, _, source, _ in rs_events}
    created = [m for _, reason, _, m in rs_events if reason == "SuccessfulCreate"]
    deleted = [m for _, reason, _, m in rs_events if reason == "SuccessfulDelete"]
    assert sources == {"replicaset-controller"}
    assert len(created) == 2 and all(m.startswith(f"Created pod: {rs}-") for m in created)
    assert len(deleted) == 1 and deleted[0].replace("Deleted", "Created") in created
    apps.delete_namespaced_deployment("events", NS)


def test_identical_events_aggregate_and_failures_are_swallowed() -> None:
    store = Store()
    pod = store.create(
        "", "pods", NS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
    )
    recorder = EventRecorder(store, "kubelet", host="local")
    for _ in range(3):
        recorder.warning(pod, "BackOff", "back-off", "spec.containers{c}")
    recorder.warning(pod, "BackOff", "another message", "spec.containers{c}")
    events, _ = store.list("", "events", NS)
    assert sorted((e["message"], e["count"]) for e in events) == [
        ("another message", 1),
        ("back-off", 3),
    ]
    first = next(e for e in events if e["message"] == "back-off")
    store.delete("", "events", NS, first["metadata"]["name"])
    recorder.warning(pod, "BackOff", "back-off", "spec.containers{c}")
    again = [e for e in store.list("", "events", NS)[0] if e["message"] == "back-off"]
    assert [e["count"] for e in again] == [4]

    # The involved object's namespace does not exist: nothing is recorded, nothing raised.
    elsewhere = {**pod, "metadata": {**pod["metadata"], "namespace": "gone"}}
    recorder.normal(elsewhere, "Killing", "Stopping container c")
    recorded = store.list("", "events", None)[0]
    assert [e["involvedObject"]["namespace"] for e in recorded] == [NS, NS]
