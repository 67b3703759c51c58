"""The kubelet's probe events on process pods: Unhealthy for each failed attempt, worded as the
kubelet words it (identical ones counted), and Killing when a liveness or startup probe stops
the container."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from gyre_local.cluster import LocalCluster, wait_for

pytestmark = pytest.mark.cluster
NS = "default"
IMAGE = "local/python:3.11"
# Answers 500 to its first two requests, then 200.
FLAKY_SERVER = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    served = 0
    def do_GET(self):
        Handler.served += 1
        self.send_response(500 if Handler.served <= 2 else 200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
SLEEPER = "import time; time.sleep(600)"


@pytest.fixture(scope="module")
def cluster(process_cluster: LocalCluster) -> LocalCluster:
    """This module's tests run pods as processes."""
    return process_cluster


def pod(name: str, script: str, restart_policy: str = "Always", **probes: Any) -> dict[str, Any]:
    """A pod of one Python container "main" with container port 8080 and these probes."""
    main = {
        "name": "main",
        "image": IMAGE,
        "command": ["python", "-c", script],
        "ports": [{"containerPort": 8080}],
        **probes,
    }
    spec = {"restartPolicy": restart_policy, "terminationGracePeriodSeconds": 1}
    return {"metadata": {"name": name}, "spec": {**spec, "containers": [main]}}


def main_status(core: client.CoreV1Api, name: str) -> client.V1ContainerStatus:
    """The status of the pod's container."""
    return core.read_namespaced_pod(name, NS).status.container_statuses[0]


def events(core: client.CoreV1Api, name: str) -> dict[str, client.CoreV1Event]:
    """The pod's events by reason and message."""
    found = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}").items
    return {f"{event.reason}: {event.message}": event for event in found}


def test_readiness_failures_then_ready(core: client.CoreV1Api) -> None:
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}
    probe |= {"initialDelaySeconds": 1, "failureThreshold": 1}
    core.create_namespaced_pod(NS, pod("flaky", FLAKY_SERVER, readinessProbe=probe))
    wait_for(lambda: main_status(core, "flaky").ready)
    recorded = events(core, "flaky")
    message = "Readiness probe failed: HTTP probe failed with statuscode: 500"
    unhealthy = recorded[f"Unhealthy: {message}"]
    assert (unhealthy.type, unhealthy.count) == ("Warning", 2)
    assert unhealthy.involved_object.field_path == "spec.containers{main}"
    assert unhealthy.source.component == "kubelet"
    assert not [key for key in recorded if key.startswith("Killing")]


def test_liveness_failure_restarts_the_container(core: client.CoreV1Api) -> None:
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}
    liveness = probe | {"failureThreshold": 2}
    core.create_namespaced_pod(NS, pod("deaf", SLEEPER, livenessProbe=liveness))
    wait_for(lambda: main_status(core, "deaf").restart_count)
    recorded = events(core, "deaf")
    refused = (
        'Unhealthy: Liveness probe failed: Get "http://127.0.0.1:8080/healthz": dial tcp '
        "127.0.0.1:8080: connect: connection refused"
    )
    assert recorded[refused].type == "Warning"
    assert recorded[refused].count >= 2
    killing = recorded["Killing: Container main failed liveness probe, will be restarted"]
    assert (killing.type, killing.involved_object.field_path) == ("Normal", "spec.containers{main}")


def test_startup_failure_of_a_pod_that_never_restarts(core: client.CoreV1Api) -> None:
    probe = {"exec": {"command": ["sh", "-c", "echo not yet; exit 1"]}, "periodSeconds": 1}
    startup = probe | {"failureThreshold": 1}
    core.create_namespaced_pod(NS, pod("late", SLEEPER, "Never", startupProbe=startup))
    wait_for(lambda: core.read_namespaced_pod("late", NS).status.phase == "Failed")
    recorded = events(core, "late")
    assert recorded["Unhealthy: Startup probe failed: not yet\n"].type == "Warning"
    assert recorded["Killing: Container main failed startup probe"].type == "Normal"


def test_a_tcp_probe_names_the_container_port(core: client.CoreV1Api) -> None:
    probe = {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 1}
    core.create_namespaced_pod(NS, pod("closed", SLEEPER, readinessProbe=probe))
    message = "Readiness probe failed: dial tcp 127.0.0.1:8080: connect: connection refused"
    wait_for(lambda: f"Unhealthy: {message}" in events(core, "closed"))
    assert not main_status(core, "closed").ready


def test_an_exec_probe_runs_as_the_container_sees_its_paths(core: client.CoreV1Api) -> None:
    script = (
        "import os, time; time.sleep(1); "
        "open(os.path.join(os.environ['GYRE_MOUNT_DATA'], 'ready'), 'w'); time.sleep(600)"
    )
    probe = {
        "exec": {"command": ["python", "-c", "import os; assert os.path.exists('/data/ready')"]}
    }
    manifest = pod("mounted", script, readinessProbe=probe | {"periodSeconds": 1})
    manifest["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    core.create_namespaced_pod(NS, manifest)
    wait_for(lambda: main_status(core, "mounted").ready)
