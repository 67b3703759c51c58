"""Pod-facing API behaviour: log tails, kubectl's STATUS column, Service deletion responses."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from gyre_local.cluster import LocalCluster, running_cluster, wait_for
from gyre_local.kubelet.kubelet import Behaviour


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with running_cluster(kubelet="simulated") as running:
        running.simulation.add(
            Behaviour(duration=0.05, exit_code=0, logs="one\ntwo\nthree\n"), name_prefix="done"
        )
        running.simulation.add(Behaviour(duration=0.05, exit_code=3), name_prefix="broken")
        yield running


def make_pod(core: client.CoreV1Api, name: str) -> None:
    core.create_namespaced_pod(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox"}],
            },
        },
    )


def kubectl(cluster: LocalCluster, tmp: Path, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path), "KUBECACHEDIR": str(tmp)}
    return subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, check=True
    ).stdout


def test_tail_lines_returns_the_last_lines(cluster: LocalCluster, tmp_path: Path) -> None:
    core = client.CoreV1Api(cluster.api_client())
    make_pod(core, "done-tail")
    wait_for(lambda: core.read_namespaced_pod("done-tail", "default").status.phase == "Succeeded")
    assert core.read_namespaced_pod_log("done-tail", "default", tail_lines=2) == "two\nthree\n"
    assert kubectl(cluster, tmp_path, "logs", "done-tail", "--tail=1") == "three\n"


def test_status_column_shows_the_container_reason(cluster: LocalCluster, tmp_path: Path) -> None:
    core = client.CoreV1Api(cluster.api_client())
    make_pod(core, "done-status")
    make_pod(core, "broken-status")
    wait_for(lambda: core.read_namespaced_pod("broken-status", "default").status.phase == "Failed")
    wait_for(lambda: core.read_namespaced_pod("done-status", "default").status.phase == "Succeeded")
    rows = {
        line.split()[0]: line.split()[2]
        for line in kubectl(cluster, tmp_path, "get", "pods").splitlines()[1:]
    }
    assert rows["done-status"] == "Completed"
    assert rows["broken-status"] == "Error"


def test_deleting_a_service_answers_with_the_service(cluster: LocalCluster) -> None:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_service(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    deleted = core.delete_namespaced_service("web", "default")
    assert isinstance(deleted, client.V1Service)
    assert deleted.metadata.name == "web"
