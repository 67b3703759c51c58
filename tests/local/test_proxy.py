"""The Service proxy: local ports per Service port, round-robin over ready process pods."""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gyre_local.cluster import LocalCluster, running_cluster, wait_for

pytestmark = pytest.mark.cluster
NS = "default"

ECHO_SERVER = """
import http.server, json, os

class Echo(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        reply = {"pod": os.environ["HOSTNAME"], "version": os.environ["VERSION"],
                 "method": self.command, "path": self.path, "body": body,
                 "header": self.headers.get("X-Test")}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Echo).serve_forever()
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    options = {"kubelet": "process", "image_map": {"local/python": sys.executable}}
    with running_cluster(**options) as running:
        yield running


def echo_deployment(
    name: str, replicas: int, version: str, app: str, script: str = ECHO_SERVER
) -> dict[str, Any]:
    container = {
        "name": "echo",
        "image": "local/python",
        "command": ["python", "-c", script],
        "env": [{"name": "VERSION", "value": version}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
    }
    labels = {"app": app, "version": version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def service(name: str, app: str) -> dict[str, Any]:
    port = {"name": "web", "port": 80, "targetPort": "http"}
    return {"metadata": {"name": name}, "spec": {"selector": {"app": app}, "ports": [port]}}


def ready_addresses(core: client.CoreV1Api, name: str) -> int:
    subsets = core.read_namespaced_endpoints(name, NS).subsets or []
    return sum(len(s.addresses or []) for s in subsets)


def fetch(url: str, **options: Any) -> dict[str, Any]:
    with urllib.request.urlopen(urllib.request.Request(url, **options)) as response:
        return dict(json.loads(response.read()))


def test_round_robin_over_two_pods_forwards_the_request(
    cluster: LocalCluster, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment(NS, echo_deployment("echo", 2, "v1", "echo"))
    core.create_namespaced_service(NS, service("echo", "echo"))
    wait_for(lambda: ready_addresses(core, "echo") == 2)
    url = cluster.service_url(NS, "echo")
    annotations = core.read_namespaced_service("echo", NS).metadata.annotations
    assert annotations["local.gyre.dev/url"] == url
    assert json.loads(annotations["local.gyre.dev/ports"]) == {"80": int(url.rsplit(":", 1)[1])}
    assert core.read_namespaced_service("echo", NS).spec.cluster_ip.startswith("10.96.")
    answers = [fetch(f"{url}/v2/models?x=1") for _ in range(6)]
    assert collections.Counter(a["pod"] for a in answers).most_common()[0][1] == 3
    assert len({a["pod"] for a in answers}) == 2
    assert answers[0]["path"] == "/v2/models?x=1"
    posted = fetch(f"{url}/infer", data=b'{"inputs": []}', headers={"X-Test": "yes"})
    assert (posted["method"], posted["body"], posted["header"]) == ("POST", '{"inputs": []}', "yes")


def test_replica_counts_weight_a_canary(
    cluster: LocalCluster, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment(NS, echo_deployment("model-stable", 3, "stable", "model"))
    apps.create_namespaced_deployment(NS, echo_deployment("model-canary", 1, "canary", "model"))
    core.create_namespaced_service(NS, service("model", "model"))
    wait_for(lambda: ready_addresses(core, "model") == 4)
    url = cluster.service_url(NS, "model", "web")
    versions = collections.Counter(fetch(url)["version"] for _ in range(8))
    assert versions == {"stable": 6, "canary": 2}


def test_no_ready_endpoint_is_a_clear_503(cluster: LocalCluster, core: client.CoreV1Api) -> None:
    core.create_namespaced_service(NS, service("empty", "nobody"))
    url = wait_for(
        lambda: (core.read_namespaced_service("empty", NS).metadata.annotations or {}).get(
            "local.gyre.dev/url"
        )
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(url)
    assert raised.value.code == 503
    assert "no ready endpoints" in raised.value.read().decode()


def http_route(name: str, weights: dict[str, int]) -> dict[str, Any]:
    refs = [{"name": svc, "port": 80, "weight": weight} for svc, weight in weights.items()]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}], "backendRefs": refs}
            ],
        },
    }


def test_http_route_weights_split_traffic_exactly(
    cluster: LocalCluster, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    custom = client.CustomObjectsApi(cluster.api_client())
    for version in ("blue", "green"):
        apps.create_namespaced_deployment(NS, echo_deployment(version, 1, version, version))
        core.create_namespaced_service(NS, service(version, version))
    wait_for(lambda: ready_addresses(core, "blue") == 1 and ready_addresses(core, "green") == 1)
    route = http_route("split", {"blue": 90, "green": 10})
    custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NS, "httproutes", route
    )
    url = wait_for(
        lambda: (
            custom.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", NS, "httproutes", "split"
            )["metadata"]
            .get("annotations", {})
            .get("local.gyre.dev/url")
        )
    )
    assert url == cluster.route_url(NS, "split")
    versions = collections.Counter(fetch(f"{url}/v2/models/m/infer")["version"] for _ in range(20))
    assert versions == {"blue": 18, "green": 2}
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{url}/v2x")
    assert raised.value.code == 404


def http_pod(name: str, app: str, script: str, **container: Any) -> dict[str, Any]:
    main = {
        "name": "main",
        "image": "local/python",
        "command": ["python", "-c", script],
        "ports": [{"name": "http", "containerPort": 8080}],
        **container,
    }
    labels = {"app": app}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [main]}}


def test_a_backend_refusing_connections_is_skipped_for_every_method(
    cluster: LocalCluster, core: client.CoreV1Api, keepalive_server: str
) -> None:
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 1}
    core.create_namespaced_pod(
        NS, http_pod("mixed-live", "mixed", keepalive_server, readinessProbe=probe)
    )
    # Ready without a probe, listening nowhere: a pod that exited but is still an endpoint.
    core.create_namespaced_pod(NS, http_pod("mixed-dead", "mixed", "import time; time.sleep(600)"))
    core.create_namespaced_service(NS, service("mixed", "mixed"))
    wait_for(lambda: ready_addresses(core, "mixed") == 2)
    url = cluster.service_url(NS, "mixed")
    for index, method in enumerate(["GET", "POST", "PUT", "DELETE", "PATCH"] * 4):
        answer = fetch(f"{url}/r{index}", method=method, data=f"body {index}".encode())
        assert (answer["pod"], answer["method"]) == ("mixed-live", method)
        assert (answer["path"], answer["body"]) == (f"/r{index}", f"body {index}")


def test_a_killed_backend_fails_no_request(
    cluster: LocalCluster, apps: client.AppsV1Api, core: client.CoreV1Api, keepalive_server: str
) -> None:
    deployment = echo_deployment("steady", 2, "v1", "steady", keepalive_server)
    apps.create_namespaced_deployment(NS, deployment)
    core.create_namespaced_service(NS, service("steady", "steady"))
    wait_for(lambda: ready_addresses(core, "steady") == 2)
    url = cluster.service_url(NS, "steady")
    warm = [fetch(url) for _ in range(4)]
    pids = {answer["pod"]: answer["pid"] for answer in warm}
    assert len(pids) == 2
    # Round-robin alternates: the next request goes first to the pod that did not answer last,
    # which is killed, racing the kubelet and the Endpoints update.
    survivor = warm[-1]["pod"]
    victim = next(pod for pod in pids if pod != survivor)
    os.kill(pids[victim], signal.SIGKILL)
    answers, failed = [], []
    for i in range(60):
        try:
            answers.append(fetch(f"{url}/after", data=b"x" if i % 2 else None))
        except urllib.error.HTTPError as error:
            failed.append(error.code)
    # A connection the dying process had already accepted is reset, on a real cluster too:
    # at most that one request may fail. Refused connections and kept-alive connections the
    # backend closed are retried, so no other request fails.
    assert failed in ([], [502]), failed
    assert survivor in {a["pod"] for a in answers}
    assert pids[victim] not in {a["pid"] for a in answers}


@pytest.fixture(scope="module")
def single(cluster: LocalCluster, core: client.CoreV1Api, keepalive_server: str) -> str:
    """The URL of Service single, over one keep-alive echo pod."""
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 1}
    core.create_namespaced_pod(
        NS, http_pod("single", "single", keepalive_server, readinessProbe=probe)
    )
    core.create_namespaced_service(NS, service("single", "single"))
    wait_for(lambda: ready_addresses(core, "single") == 1)
    return cluster.service_url(NS, "single")


def test_a_connection_the_backend_closed_while_idle_is_retried_on_a_new_one(single: str) -> None:
    first, second = fetch(single), fetch(single)
    assert first["peer"] == second["peer"]
    marked = fetch(single, headers={"X-Drop-Next": "yes"})
    # The backend closes the kept-alive connection instead of answering this request on it.
    retried = fetch(f"{single}/again", data=b"payload")
    assert (retried["method"], retried["path"], retried["body"]) == ("POST", "/again", "payload")
    assert retried["peer"] != marked["peer"]


def test_connection_close_from_a_backend_drops_the_connection(single: str) -> None:
    closing = fetch(single, headers={"X-Close": "yes"})
    # The backend keeps its end open: a reused connection would show the same client port.
    assert fetch(single)["peer"] != closing["peer"]


def test_a_backend_failing_after_receiving_the_request_is_a_502(single: str) -> None:
    before = fetch(single, headers={"X-Close": "yes"})["crashes"]
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(urllib.request.Request(f"{single}/crash", data=b"x"))
    assert raised.value.code == 502
    assert "service default/single: 127.0.0.1:" in raised.value.read().decode()
    assert fetch(single)["crashes"] == before + 1
