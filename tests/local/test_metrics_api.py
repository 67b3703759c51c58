"""The resource metrics API (metrics.k8s.io/v1beta1) over process pods, read as kubectl top
and clients read metrics-server."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubectl_runner import Kubectl
from kubernetes import client

from gyre_local.apiserver.metrics import duration
from gyre_local.cluster import LocalCluster, wait_for
from gyre_local.kubelet.usage import Sample, Usage, UsageHistory, node_sample, session_totals
from gyre_local.quantities import decimal_quantity, memory_quantity

pytestmark = pytest.mark.cluster
NS = "metrics"
IMAGE = "local/python:3.11"
BURN = "while True: pass"
IDLE = "import time; time.sleep(3600)"
# Seconds between the two usage samples the rates are measured over.
WINDOW = 1.0


@pytest.fixture(scope="module")
def cluster(process_cluster: LocalCluster) -> LocalCluster:
    """This module's tests run pods as processes."""
    return process_cluster


def _pod(name: str, program: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations or {}},
        "spec": {
            "containers": [{"name": "main", "image": IMAGE, "command": ["python", "-c", program]}]
        },
    }


def _running(core: client.CoreV1Api, name: str) -> bool:
    return core.read_namespaced_pod(name, NS).status.phase == "Running"


@pytest.fixture(scope="module")
def pods(cluster: LocalCluster, core: client.CoreV1Api) -> Iterator[None]:
    """A pod burning a CPU, an idle one and a simulated one, their usage sampled twice."""
    core.create_namespace({"metadata": {"name": NS}})
    core.create_namespaced_pod(NS, _pod("busy", BURN))
    core.create_namespaced_pod(NS, _pod("idle", IDLE))
    core.create_namespaced_pod(NS, _pod("sim", IDLE, {"local.gyre.dev/kubelet": "simulated"}))
    for name in ("busy", "idle", "sim"):
        wait_for(lambda name=name: _running(core, name))
    cluster.call(cluster.kubelet.sample_usage)
    time.sleep(WINDOW)
    cluster.call(cluster.kubelet.sample_usage)
    yield
    core.delete_namespace(NS)


def _get(cluster: LocalCluster, path: str) -> Any:
    with urllib.request.urlopen(cluster.url + path, context=cluster.ssl_context()) as response:
        return json.load(response)


def _error(cluster: LocalCluster, path: str) -> tuple[int, dict[str, Any]]:
    """The status code and Status of a failed GET."""
    with pytest.raises(urllib.error.HTTPError) as raised:
        _get(cluster, path)
    return raised.value.code, json.load(raised.value)


def _nanocores(quantity: str) -> int:
    scales = {"n": 1, "u": 1_000, "m": 1_000_000}
    if quantity[-1] in scales:
        return int(quantity[:-1]) * scales[quantity[-1]]
    return int(quantity) * 1_000_000_000


def _bytes(quantity: str) -> int:
    scales = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    return int(quantity[:-2]) * scales[quantity[-2:]] if quantity[-2:] in scales else int(quantity)


@pytest.mark.usefixtures("pods")
def test_pod_metrics_show_the_busy_pod_using_more_cpu(cluster: LocalCluster) -> None:
    listed = _get(cluster, f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods")
    assert listed["kind"] == "PodMetricsList"
    assert listed["apiVersion"] == "metrics.k8s.io/v1beta1"
    by_name = {item["metadata"]["name"]: item for item in listed["items"]}
    assert sorted(by_name) == ["busy", "idle"]  # a simulated pod has no metrics
    busy, idle = by_name["busy"], by_name["idle"]
    assert busy["kind"] == "PodMetrics"
    assert busy["metadata"]["namespace"] == NS
    assert busy["metadata"]["labels"] == {"app": "busy"}
    assert busy["metadata"]["creationTimestamp"] and busy["timestamp"]
    assert busy["window"].endswith("s") and float(busy["window"][:-1]) >= WINDOW
    [busy_main] = busy["containers"]
    [idle_main] = idle["containers"]
    assert busy_main["name"] == "main"
    busy_cpu = _nanocores(busy_main["usage"]["cpu"])
    assert busy_cpu > _nanocores(idle_main["usage"]["cpu"])
    assert busy_cpu > 100_000_000  # a tenth of a core at least
    assert _bytes(busy_main["usage"]["memory"]) > 0
    assert busy_main["usage"]["memory"].endswith("Ki") or "Mi" in busy_main["usage"]["memory"]


@pytest.mark.usefixtures("pods")
def test_one_pod_metrics_and_selectors(cluster: LocalCluster) -> None:
    one = _get(cluster, f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods/idle")
    assert one["metadata"]["name"] == "idle"
    selected = _get(
        cluster, f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods?labelSelector=app=busy"
    )
    assert [item["metadata"]["name"] for item in selected["items"]] == ["busy"]
    everywhere = _get(cluster, "/apis/metrics.k8s.io/v1beta1/pods")
    assert {"busy", "idle"} <= {item["metadata"]["name"] for item in everywhere["items"]}


@pytest.mark.usefixtures("pods")
def test_pods_without_metrics_are_not_found_as_metrics_server_answers(
    cluster: LocalCluster,
) -> None:
    code, status = _error(cluster, f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods/sim")
    assert (code, status["reason"]) == (404, "NotFound")
    assert status["message"] == 'podmetrics.metrics.k8s.io "metrics/sim" not found'
    code, status = _error(cluster, f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods/nope")
    assert (code, status["message"]) == (404, 'pods "nope" not found')


@pytest.mark.usefixtures("pods")
def test_node_metrics(cluster: LocalCluster) -> None:
    nodes = _get(cluster, "/apis/metrics.k8s.io/v1beta1/nodes")
    assert nodes["kind"] == "NodeMetricsList"
    [node] = nodes["items"]
    assert node["kind"] == "NodeMetrics"
    assert node["metadata"]["name"] == "local"
    assert _nanocores(node["usage"]["cpu"]) > 0
    assert _bytes(node["usage"]["memory"]) > 0
    assert _get(cluster, "/apis/metrics.k8s.io/v1beta1/nodes/local")["usage"] == node["usage"]
    code, status = _error(cluster, "/apis/metrics.k8s.io/v1beta1/nodes/other")
    assert (code, status["message"]) == (404, 'nodes "other" not found')


def test_discovery_lists_the_metrics_group(cluster: LocalCluster) -> None:
    groups = {g["name"]: g for g in _get(cluster, "/apis")["groups"]}
    assert groups["metrics.k8s.io"]["preferredVersion"]["groupVersion"] == "metrics.k8s.io/v1beta1"
    resources = _get(cluster, "/apis/metrics.k8s.io/v1beta1")["resources"]
    assert {(r["name"], r["kind"], r["namespaced"]) for r in resources} == {
        ("pods", "PodMetrics", True),
        ("nodes", "NodeMetrics", False),
    }
    assert all(r["verbs"] == ["get", "list"] for r in resources)


@pytest.mark.usefixtures("pods")
def test_kubectl_top_pods(kubectl: Kubectl) -> None:
    lines = kubectl("top", "pods", "-n", NS).stdout.splitlines()
    assert lines[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["busy", "idle"]
    containers = kubectl("top", "pod", "busy", "-n", NS, "--containers").stdout.splitlines()
    assert containers[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert containers[1].split()[:2] == ["busy", "main"]
    simulated = kubectl("top", "pod", "sim", "-n", NS, check=False)
    assert simulated.returncode != 0
    assert simulated.stderr == (
        'Error from server (NotFound): podmetrics.metrics.k8s.io "metrics/sim" not found\n'
    )


@pytest.mark.usefixtures("pods")
def test_kubectl_top_node(kubectl: Kubectl) -> None:
    lines = kubectl("top", "node").stdout.splitlines()
    assert lines[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert lines[1].split()[0] == "local"


@pytest.mark.parametrize(
    ("nanocores", "quantity"),
    [
        (0, "0"),
        (1500, "1500n"),
        (12_000_000, "12m"),
        (3_000, "3u"),
        (2_000_000_000, "2"),
        (50 * 10**15, "50M"),
    ],
)
def test_cpu_quantities_are_canonical(nanocores: int, quantity: str) -> None:
    assert decimal_quantity(nanocores) == quantity


@pytest.mark.parametrize(
    ("size", "quantity"),
    [(0, "0"), (1000, "1000"), (4096, "4Ki"), (1 << 20, "1Mi"), (3 << 30, "3Gi")],
)
def test_memory_quantities_are_canonical(size: int, quantity: str) -> None:
    assert memory_quantity(size) == quantity


def test_windows_read_as_go_durations() -> None:
    assert duration(10.0) == "10s"
    assert duration(1.25) == "1.25s"


def _stat_line(pid: int, session: int, ticks: tuple[int, int, int, int], rss_pages: int) -> str:
    """A /proc/<pid>/stat line (the command holds a space and a parenthesis, as they may)."""
    utime, stime, cutime, cstime = ticks
    after_command = ["S", "1", str(session), str(session), "0", "-1", "0", "0", "0", "0", "0"]
    after_command += [str(utime), str(stime), str(cutime), str(cstime), "20", "0", "1", "0"]
    after_command += ["100", "1000", str(rss_pages)]
    return f"{pid} (py thon) x) " + " ".join(after_command) + "\n"


def test_sessions_sum_their_processes_cpu_and_memory(tmp_path: Path) -> None:
    processes = {
        10: _stat_line(10, 10, (100, 50, 20, 30), 1000),
        11: _stat_line(11, 10, (100, 0, 0, 0), 24),
        12: _stat_line(12, 12, (1, 1, 0, 0), 1),
    }
    for pid, line in processes.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(line)
    (tmp_path / "self").mkdir()
    totals = session_totals(tmp_path)
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    assert totals[10] == (300 / ticks, 1024 * page)
    assert totals[12] == (2 / ticks, page)


def test_node_usage_is_busy_time_and_memory_in_use(tmp_path: Path) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    (tmp_path / "stat").write_text(f"cpu  {ticks} 0 {ticks} 5000 700 0 0 0 0 0\ncpu0 1 1 1 1\n")
    (tmp_path / "meminfo").write_text(
        "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n"
    )
    sample = node_sample(tmp_path)
    assert sample.cpu_seconds == 2.0
    assert sample.memory_bytes == 600 * 1024


def test_usage_is_the_rate_between_the_last_two_samples() -> None:
    history = UsageHistory()
    history.record("c", Sample(10.0, "t1", cpu_seconds=5.0, memory_bytes=1))
    assert history.usage("c") is None
    history.record("c", Sample(12.0, "t2", cpu_seconds=6.0, memory_bytes=2))
    history.record("c", Sample(14.0, "t3", cpu_seconds=6.5, memory_bytes=3))
    assert history.usage("c") == Usage("t3", 2.0, 250_000_000, 3)
    history.keep_only([])
    assert history.usage("c") is None
