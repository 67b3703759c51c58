"""Fixtures running the local API server on a free 127.0.0.1 port in a background thread."""

from __future__ import annotations

import asyncio
import copy
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest
import yaml
from aiohttp import web
from kubectl_runner import Kubectl, kubectl_runner

from gyre_local.apiserver.app import create_app
from gyre_local.cluster import LocalCluster, running_cluster
from gyre_local.kubelet.state import Backoff
from gyre_local.store.store import Store

T = TypeVar("T")


class LocalApiServer:
    """A Store served over HTTP by its own event loop in a daemon thread."""

    def __init__(self, store: Store, kubeconfig: Path) -> None:
        self.store = store
        self.kubeconfig = kubeconfig
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        """Start serving and write the kubeconfig."""
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": self.url}}],
            "users": [{"name": "local", "user": {}}],
            "contexts": [
                {
                    "name": "local",
                    "context": {"cluster": "local", "user": "local", "namespace": "default"},
                }
            ],
            "current-context": "local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    async def _serve(self) -> str:
        self._runner = web.AppRunner(create_app(self.store), handler_cancellation=True)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store call on the server's loop thread (the store is not thread-safe)."""
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:
                future.set_exception(error)

        self._loop.call_soon_threadsafe(run)
        return future.result(10)

    def stop(self) -> None:
        """Stop serving and end the loop thread."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def make_apiserver(tmp_path: Path) -> Iterator[Callable[..., LocalApiServer]]:
    """A factory of started servers over a Store built with the given keyword arguments."""
    servers: list[LocalApiServer] = []

    def make(**store_options: Any) -> LocalApiServer:
        server = LocalApiServer(Store(**store_options), tmp_path / f"kubeconfig-{len(servers)}")
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def apiserver(make_apiserver: Callable[..., LocalApiServer]) -> LocalApiServer:
    """A fresh local API server with an empty store (plus the initial namespaces)."""
    return make_apiserver()


@pytest.fixture
def kube_client(apiserver: LocalApiServer) -> Iterator[kubernetes.client.ApiClient]:
    """An official kubernetes ApiClient talking to the local API server."""
    configuration = kubernetes.client.Configuration()
    configuration.host = apiserver.url
    client = kubernetes.client.ApiClient(configuration)
    yield client
    client.close()


WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wd"],
            "categories": ["all"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {
                                        "type": "string",
                                        "enum": ["red", "blue"],
                                        "default": "red",
                                    },
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string", "enum": ["Pending", "Ready"]},
                                    "conditions": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "type": {"type": "string"},
                                                "status": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def widget_crd_manifest() -> dict[str, Any]:
    """The test Widget CRD manifest (not registered)."""
    return copy.deepcopy(WIDGET_CRD)


@pytest.fixture
def widget_crd(kube_client: kubernetes.client.ApiClient) -> dict[str, Any]:
    """The test Widget CRD (example.com/v1, namespaced, status subresource), registered."""
    api = kubernetes.client.ApiextensionsV1Api(kube_client)
    created: dict[str, Any] = api.api_client.sanitize_for_serialization(
        api.create_custom_resource_definition(WIDGET_CRD)
    )
    return created


KEEPALIVE_SERVER = """
import http.server, json, os, threading

crashes = 0


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    drop_next = False

    def _answer(self):
        global crashes
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        crashing = self.path.startswith("/crash")
        crashes += crashing
        if crashing or self.drop_next:
            self.close_connection = True
            return
        self.drop_next = self.headers.get("X-Drop-Next") == "yes"
        reply = {"pod": os.environ["HOSTNAME"], "pid": os.getpid(), "listener": self.server.name,
                 "peer": self.client_address[1], "method": self.command, "path": self.path,
                 "body": body, "header": self.headers.get("X-Test"), "crashes": crashes}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Backend", "echo")
        if self.headers.get("X-Close") == "yes":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = False

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


servers = []
for key, value in sorted(os.environ.items()):
    if key.startswith("GYRE_PORT_"):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", int(value)), Echo)
        server.name = key.removeprefix("GYRE_PORT_").lower()
        servers.append(server)
for server in servers[1:]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
servers[0].serve_forever()
"""


@pytest.fixture(scope="session")
def keepalive_server() -> str:
    """Python source of an HTTP/1.1 echo server for process pods, on every GYRE_PORT_<NAME>.

    It answers with JSON naming the pod, its pid, the listener (port name), the client's port
    (one per connection), the method, path, body and X-Test header, and how many /crash
    requests it got. It keeps connections alive, even after answering `X-Close: yes` with
    `Connection: close` (only the client may drop it then). It closes the connection without
    answering on /crash, and on the request after one carrying `X-Drop-Next: yes` (as a server
    closing an idle connection that a client has just sent a request on).
    """
    return KEEPALIVE_SERVER


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A local cluster with a simulated kubelet, shared by a test module."""
    with running_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def process_cluster() -> Iterator[LocalCluster]:
    """A local cluster whose kubelet runs pods as processes (image local/python is this
    interpreter; restarts back off briefly), shared by a test module."""
    options: dict[str, Any] = {
        "kubelet": "process",
        "image_map": {"local/python": sys.executable},
        "restart_backoff": Backoff(0.05, 0.2),
    }
    with running_cluster(**options) as running:
        yield running


@pytest.fixture(scope="module")
def kubectl(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl against the module's cluster, with a discovery cache of its own."""
    return kubectl_runner(cluster.kubeconfig_path, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def core(cluster: LocalCluster) -> kubernetes.client.CoreV1Api:
    """The core/v1 API of the module's cluster."""
    return kubernetes.client.CoreV1Api(cluster.api_client())


@pytest.fixture(scope="module")
def apps(cluster: LocalCluster) -> kubernetes.client.AppsV1Api:
    """The apps/v1 API of the module's cluster."""
    return kubernetes.client.AppsV1Api(cluster.api_client())


@pytest.fixture(scope="module")
def batch(cluster: LocalCluster) -> kubernetes.client.BatchV1Api:
    """The batch/v1 API of the module's cluster."""
    return kubernetes.client.BatchV1Api(cluster.api_client())
