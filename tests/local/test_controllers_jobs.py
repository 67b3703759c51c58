"""The Job controller against the local cluster with the simulated kubelet."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from gyre_local.cluster import LocalCluster, running_cluster, wait_for
from gyre_local.kubelet.state import Backoff
from gyre_local.store.store import Store

pytestmark = pytest.mark.cluster
NS = "default"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with running_cluster(restart_backoff=Backoff(0.05, 0.2)) as running:
        yield running


def job(name: str, *, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    restart_policy = spec.pop("restart_policy", "Never")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            **spec,
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                "spec": {
                    "restartPolicy": restart_policy,
                    "containers": [{"name": "main", "image": "busybox"}],
                },
            },
        },
    }


def condition(batch: client.BatchV1Api, name: str, kind: str) -> Any:
    status = batch.read_namespaced_job(name, NS).status
    return next((c for c in status.conditions or [] if c.type == kind and c.status == "True"), None)


def pods_of(core: client.CoreV1Api, name: str) -> list[Any]:
    return core.list_namespaced_pod(NS, label_selector=f"job-name={name}").items


def test_job_completes_with_one_owned_pod(batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    created = batch.create_namespaced_job(NS, job("ok"))
    wait_for(lambda: condition(batch, "ok", "Complete"))
    status = batch.read_namespaced_job("ok", NS).status
    assert status.succeeded == 1
    assert not status.failed and not status.active
    assert status.start_time is not None and status.completion_time is not None
    assert condition(batch, "ok", "SuccessCriteriaMet").reason == "CompletionsReached"
    (pod,) = pods_of(core, "ok")
    assert pod.metadata.name.startswith("ok-") and len(pod.metadata.name) == len("ok-") + 5
    assert pod.metadata.labels["batch.kubernetes.io/job-name"] == "ok"
    assert pod.metadata.labels["controller-uid"] == created.metadata.uid
    assert pod.metadata.labels["app"] == "ok"
    (owner,) = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Job", "ok", created.metadata.uid)
    assert owner.controller and owner.block_owner_deletion
    assert pod.status.phase == "Succeeded"
    assert not pod.metadata.finalizers


def test_failed_pods_are_retried_until_the_backoff_limit(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    failing = {"local.gyre.dev/simulate-exit-code": "3"}
    batch.create_namespaced_job(NS, job("fails", annotations=failing, backoffLimit=2))
    failed = wait_for(lambda: condition(batch, "fails", "Failed"))
    assert failed.reason == "BackoffLimitExceeded"
    assert condition(batch, "fails", "FailureTarget").reason == "BackoffLimitExceeded"
    assert batch.read_namespaced_job("fails", NS).status.failed == 3
    pods = pods_of(core, "fails")
    assert len(pods) == 3
    assert {p.status.phase for p in pods} == {"Failed"}
    assert pods[0].status.container_statuses[0].state.terminated.exit_code == 3


def test_on_failure_restarts_count_against_the_backoff_limit(batch: client.BatchV1Api) -> None:
    failing = {"local.gyre.dev/simulate-exit-code": "1"}
    spec = job("restarts", annotations=failing, backoffLimit=1, restart_policy="OnFailure")
    batch.create_namespaced_job(NS, spec)
    failed = wait_for(lambda: condition(batch, "restarts", "Failed"))
    assert failed.reason == "BackoffLimitExceeded"


def test_active_deadline_fails_the_job_and_deletes_its_pods(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    forever = {"local.gyre.dev/simulate-duration": "1h"}
    batch.create_namespaced_job(NS, job("slow", annotations=forever, activeDeadlineSeconds=1))
    wait_for(lambda: pods_of(core, "slow"))
    failed = wait_for(lambda: condition(batch, "slow", "Failed"))
    assert failed.reason == "DeadlineExceeded"
    wait_for(lambda: not pods_of(core, "slow"))
    status = batch.read_namespaced_job("slow", NS).status
    assert status.failed == 1 and not status.active


def test_parallel_completions(batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    batch.create_namespaced_job(NS, job("many", completions=3, parallelism=2))
    wait_for(lambda: condition(batch, "many", "Complete"))
    assert batch.read_namespaced_job("many", NS).status.succeeded == 3
    assert len(pods_of(core, "many")) == 3


def test_ttl_after_finished_deletes_job_and_pods(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job(NS, job("brief", ttlSecondsAfterFinished=0))

    def gone() -> bool:
        try:
            batch.read_namespaced_job("brief", NS)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(gone)
    wait_for(lambda: not pods_of(core, "brief"))


def test_suspended_job_creates_no_pods_until_resumed(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job(NS, job("later", suspend=True))
    wait_for(lambda: condition(batch, "later", "Suspended"))
    assert not pods_of(core, "later")
    batch.patch_namespaced_job("later", NS, {"spec": {"suspend": False}})
    wait_for(lambda: condition(batch, "later", "Complete"))
    assert condition(batch, "later", "Suspended") is None


def test_deleting_a_finished_pod_keeps_the_counts(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job(NS, job("counted"))
    wait_for(lambda: condition(batch, "counted", "Complete"))
    (pod,) = pods_of(core, "counted")
    core.delete_namespaced_pod(pod.metadata.name, NS)
    wait_for(lambda: not pods_of(core, "counted"))
    assert batch.read_namespaced_job("counted", NS).status.succeeded == 1


def test_orphaned_running_pods_are_released_from_job_tracking(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    forever = {"local.gyre.dev/simulate-duration": "1h"}
    batch.create_namespaced_job(NS, job("orphaning", annotations=forever))
    wait_for(lambda: pods_of(core, "orphaning"))
    batch.delete_namespaced_job("orphaning", NS, propagation_policy="Orphan")
    wait_for(lambda: not pods_of(core, "orphaning")[0].metadata.owner_references)
    (pod,) = wait_for(lambda: [p for p in pods_of(core, "orphaning") if not p.metadata.finalizers])
    assert pod.status.phase == "Running"


def test_a_job_selects_its_own_pods_by_uid_as_kube_apiserver_defaults_it() -> None:
    store = Store()
    job = store.create(
        "batch",
        "jobs",
        "default",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "train"},
            "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {}}},
        },
    )
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["spec"]["template"]["metadata"]["labels"] == {
        "app": "x",
        "batch.kubernetes.io/controller-uid": uid,
        "controller-uid": uid,
        "batch.kubernetes.io/job-name": "train",
        "job-name": "train",
    }
