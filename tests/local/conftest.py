"""Fixtures running the local API server on a free 127.0.0.1 port in a background thread."""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest
import yaml
from aiohttp import web

from gyre_local.apiserver.app import create_app
from gyre_local.cluster import LocalCluster, running_cluster
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


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A local cluster with a simulated kubelet, shared by a test module."""
    with running_cluster() as running:
        yield running


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
