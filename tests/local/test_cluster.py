"""The assembled local cluster driven by the real kubectl binary."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gyre_local.cluster import LocalCluster, running_cluster
from gyre_local.kubeconfig import kubeconfig

pytestmark = [pytest.mark.cluster, pytest.mark.kubectl]
KUBECTL = "/usr/bin/kubectl"

JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: train
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: trainer
          image: local/python:3.11
          command: ["python", "-c", "print('epoch 1'); print('epoch 2')"]
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    options = {"kubelet": "process", "image_map": {"local/python": sys.executable}}
    with running_cluster(**options) as running:
        yield running


def kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", str(cluster.kubeconfig_path), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kubeconfig_points_at_the_cluster(cluster: LocalCluster) -> None:
    written = yaml.safe_load(Path(cluster.kubeconfig_path).read_text())
    assert written == kubeconfig(cluster.url, cluster.pki)
    assert written["current-context"] == "gyre-local"
    assert cluster.url.startswith("https://127.0.0.1:")


def test_kubectl_apply_wait_get_and_logs(cluster: LocalCluster) -> None:
    assert "job.batch/train created" in kubectl(cluster, "apply", "-f", "-", stdin=JOB)
    waited = kubectl(cluster, "wait", "--for=condition=complete", "job/train", "--timeout=60s")
    assert "condition met" in waited
    pods = json.loads(kubectl(cluster, "get", "pods", "-l", "job-name=train", "-o", "json"))
    (pod,) = pods["items"]
    assert pod["status"]["phase"] == "Succeeded"
    table = kubectl(cluster, "get", "pods")
    assert pod["metadata"]["name"] in table
    assert kubectl(cluster, "logs", "job/train") == "epoch 1\nepoch 2\n"
    name = pod["metadata"]["name"]
    assert kubectl(cluster, "logs", name, "-c", "trainer") == "epoch 1\nepoch 2\n"
