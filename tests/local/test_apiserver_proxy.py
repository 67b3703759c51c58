"""The API server's proxy subresources, pods/proxy and services/proxy, to process pods."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from kubernetes import client

from gyre_local.cluster import LocalCluster, running_cluster, wait_for

pytestmark = pytest.mark.cluster
NS = "default"
KUBECTL = "/usr/bin/kubectl"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    options = {"kubelet": "process", "image_map": {"local/python": sys.executable}}
    with running_cluster(**options) as running:
        yield running


def pod(name: str, script: str, **metadata: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "local/python",
        "command": ["python", "-c", script],
        "ports": [
            {"name": "http", "containerPort": 8080},
            {"name": "metrics", "containerPort": 9090},
        ],
    }
    return {
        "metadata": {"name": name, "labels": {"app": name}, **metadata},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }


def phase(core: client.CoreV1Api, name: str) -> str:
    return str(core.read_namespaced_pod(name, NS).status.phase)


@pytest.fixture(scope="module")
def pods(cluster: LocalCluster, core: client.CoreV1Api, keepalive_server: str) -> None:
    """echo (a process pod serving http and metrics, behind Service echo), silent (a process
    pod listening nowhere), simulated (a simulated pod) and finished (a Succeeded one)."""
    echo = pod("echo", keepalive_server)
    echo["spec"]["containers"][0]["readinessProbe"] = {
        "tcpSocket": {"port": "metrics"},
        "periodSeconds": 1,
    }
    core.create_namespaced_pod(NS, echo)
    core.create_namespaced_pod(NS, pod("silent", "import time; time.sleep(600)"))
    simulated = {"local.gyre.dev/kubelet": "simulated"}
    core.create_namespaced_pod(NS, pod("simulated", "", annotations=simulated))
    finished = {**simulated, "local.gyre.dev/simulate-exit-code": "0"}
    core.create_namespaced_pod(NS, pod("finished", "", annotations=finished))
    ports = [
        {"name": "web", "port": 80, "targetPort": "http"},
        {"name": "metrics", "port": 9090, "targetPort": "metrics"},
    ]
    service = {"metadata": {"name": "echo"}, "spec": {"selector": {"app": "echo"}, "ports": ports}}
    core.create_namespaced_service(NS, service)
    wait_for(lambda: core.read_namespaced_pod("echo", NS).status.container_statuses[0].ready)
    wait_for(lambda: phase(core, "silent") == "Running" and phase(core, "finished") == "Succeeded")
    wait_for(lambda: core.read_namespaced_endpoints("echo", NS).subsets)


def proxy(cluster: LocalCluster, kind: str, target: str, path: str = "") -> str:
    return f"{cluster.url}/api/v1/namespaces/{NS}/{kind}/{target}/proxy{path}"


def http(cluster: LocalCluster) -> requests.Session:
    """A session trusting the cluster's CA (and only it: no CA bundle from the environment)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(cluster.ca_path)
    return session


def status_of(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    assert (body["kind"], body["status"], body["code"]) == (
        "Status",
        "Failure",
        response.status_code,
    )
    return response.status_code, body["reason"], body["message"]


@pytest.mark.usefixtures("pods")
def test_pod_proxy_forwards_query_and_headers_to_the_first_container_port(
    cluster: LocalCluster,
) -> None:
    response = http(cluster).get(
        proxy(cluster, "pods", "echo", "/metrics?x=1&y=a%20b"), headers={"X-Test": "yes"}
    )
    assert response.status_code == 200
    assert response.headers["X-Backend"] == "echo"
    assert response.headers["Content-Type"] == "application/json"
    reply = response.json()
    assert (reply["listener"], reply["path"], reply["header"]) == (
        "http",
        "/metrics?x=1&y=a%20b",
        "yes",
    )


@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_pod_proxy_forwards_every_method_with_its_body_to_a_numbered_port(
    cluster: LocalCluster, method: str
) -> None:
    for target in ("echo:9090", "http:echo:9090"):
        response = http(cluster).request(
            method, proxy(cluster, "pods", target, "/v2/infer"), data=b'{"inputs": []}'
        )
        reply = response.json()
        assert (response.status_code, reply["listener"], reply["method"]) == (
            200,
            "metrics",
            method,
        )
        assert (reply["path"], reply["body"]) == ("/v2/infer", '{"inputs": []}')


@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize(
    ("path", "forwarded"), [("", "/"), ("/", "/"), ("/a/", "/a/"), ("/a%2Fb c", "/a/b%20c")]
)
def test_pod_proxy_path_is_what_follows_proxy(
    cluster: LocalCluster, path: str, forwarded: str
) -> None:
    assert http(cluster).get(proxy(cluster, "pods", "echo", path)).json()["path"] == forwarded


@pytest.mark.usefixtures("pods")
def test_pod_port_names_are_not_resolved_as_kube_apiserver_does_not(cluster: LocalCluster) -> None:
    # kube-apiserver dials podIP:metrics: its dialer knows service names, not container ports.
    response = http(cluster).get(proxy(cluster, "pods", "echo:metrics", "/metrics"))
    assert status_of(response) == (
        503,
        "ServiceUnavailable",
        "error trying to reach service: dial tcp: lookup tcp/metrics: unknown port",
    )


@pytest.mark.usefixtures("pods")
def test_service_proxy_by_port_name_number_and_default(cluster: LocalCluster) -> None:
    by_name = http(cluster).get(proxy(cluster, "services", "echo:metrics", "/m?q=1")).json()
    assert (by_name["listener"], by_name["path"]) == ("metrics", "/m?q=1")
    by_number = (
        http(cluster).post(proxy(cluster, "services", "http:echo:80", "/x"), data=b"hi").json()
    )
    assert (by_number["listener"], by_number["method"], by_number["body"]) == ("http", "POST", "hi")
    # Without a port only a Service port without a name is meant: echo has none.
    assert status_of(http(cluster).get(proxy(cluster, "services", "echo"))) == (
        503,
        "ServiceUnavailable",
        'no endpoints available for service "echo"',
    )
    assert status_of(http(cluster).get(proxy(cluster, "services", "echo:81"))) == (
        503,
        "ServiceUnavailable",
        'no service port 81 found for service "echo"',
    )


@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize(("kind", "target"), [("pods", "nope:8080"), ("services", "nope")])
def test_missing_objects_are_not_found(cluster: LocalCluster, kind: str, target: str) -> None:
    response = http(cluster).get(proxy(cluster, kind, target, "/metrics"))
    assert status_of(response) == (404, "NotFound", f'{kind} "nope" not found')


@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("simulated", "pod default/simulated has no local port for port 8080"),
        ("echo:7000", "pod default/echo has no local port for port 7000"),
        ("finished", "pod default/finished is Succeeded"),
    ],
)
def test_pods_without_a_listening_local_port_are_unavailable(
    cluster: LocalCluster, target: str, message: str
) -> None:
    code, reason, text = status_of(http(cluster).get(proxy(cluster, "pods", target, "/metrics")))
    assert (code, reason) == (503, "ServiceUnavailable")
    assert text.startswith(f"error trying to reach service: {message}")


@pytest.mark.usefixtures("pods")
def test_backend_failures_are_unavailable(cluster: LocalCluster, core: client.CoreV1Api) -> None:
    ports = json.loads(
        core.read_namespaced_pod("silent", NS).metadata.annotations["local.gyre.dev/ports"]
    )
    refused = status_of(http(cluster).get(proxy(cluster, "pods", "silent", "/metrics")))
    assert refused == (
        503,
        "ServiceUnavailable",
        "error trying to reach service: "
        f"dial tcp 127.0.0.1:{ports['8080']}: connect: connection refused",
    )
    code, reason, message = status_of(http(cluster).get(proxy(cluster, "pods", "echo", "/crash")))
    assert (code, reason) == (503, "ServiceUnavailable")
    assert message.startswith("error trying to reach service: ")


@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("a:b:c:d", 'invalid pod request "a:b:c:d"'),
        ("ftp:echo:8080", 'invalid pod request "ftp:echo:8080"'),
        ("https:echo:8080", 'the local cluster proxies plain http only: "https:echo:8080"'),
    ],
)
def test_malformed_targets_are_bad_requests(
    cluster: LocalCluster, target: str, message: str
) -> None:
    assert status_of(http(cluster).get(proxy(cluster, "pods", target))) == (
        400,
        "BadRequest",
        message,
    )


@pytest.mark.usefixtures("pods")
def test_official_client_reads_a_pod_and_a_service_through_the_proxy(
    core: client.CoreV1Api,
) -> None:
    # Unpreloaded: the client turns a JSON answer into the repr of the decoded value.
    response = core.connect_get_namespaced_pod_proxy_with_path(
        "echo:9090", NS, "metrics", _preload_content=False
    )
    assert json.loads(response.data)["path"] == "/metrics"
    # The client percent-encodes "/" in the path; the API server decodes it as kube-apiserver does.
    response = core.connect_get_namespaced_service_proxy_with_path(
        "echo:web", NS, "v2/models", _preload_content=False
    )
    assert json.loads(response.data)["path"] == "/v2/models"


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which(KUBECTL) is None, reason="kubectl is not installed")
@pytest.mark.usefixtures("pods")
def test_kubectl_get_raw_reads_a_pod_through_the_proxy(cluster: LocalCluster) -> None:
    result = subprocess.run(
        [KUBECTL, "get", "--raw", f"/api/v1/namespaces/{NS}/pods/echo:8080/proxy/metrics"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(result.stdout)["path"] == "/metrics"
