"""The Service proxy: every Service port gets a 127.0.0.1 port forwarding HTTP to ready pods.

Like kube-proxy it reads Endpoints; it picks ready addresses round-robin, so replica counts
weight traffic between Deployments behind one Service (replica-weighted canaries), and a
backend refusing the connection is skipped for the next one (relay.py). A pod's endpoint port
maps to the pod's local port through the pod annotation local.gyre.dev/ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gyre_local.controllers.informer import watch_forever
from gyre_local.controllers.system import API_SERVICE_NAME, API_SERVICE_NAMESPACE
from gyre_local.proxy.relay import HOST, BackendError, Relay
from gyre_local.store.patching import MERGE_PATCH
from gyre_local.store.store import ApiError, Store

log = logging.getLogger(__name__)

URL_ANNOTATION = "local.gyre.dev/url"
PORTS_ANNOTATION = "local.gyre.dev/ports"
PROXIED_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")


@dataclass
class _Listener:
    service_port: dict[str, Any]
    runner: web.AppRunner
    port: int


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(host: str, handler: Handler) -> tuple[web.AppRunner, int]:
    """Serve every method and path with handler on a free port of host: (runner, port)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = bind(host, 0)
    await web.SockSite(runner, sock).start()
    return runner, int(sock.getsockname()[1])


class ServiceProxy:
    """Serves each proxied Service port on its own local port and records the URLs."""

    def __init__(self, store: Store, *, host: str = HOST) -> None:
        self.store = store
        self.host = host
        self._listeners: dict[tuple[str, str, int], _Listener] = {}
        self.backends = ServiceBackends(store)
        self.relay = Relay()
        self._pending: set[asyncio.Task[None]] = set()
        # Listener changes are serialised so two events for one Service never race.
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Follow Services until cancelled, then close every listener."""
        await self.relay.open()
        try:
            await watch_forever(self.store, "", "services", self._on_event)
        finally:
            for task in list(self._pending):
                task.cancel()
            await asyncio.gather(*self._pending, return_exceptions=True)
            for key in list(self._listeners):
                await self._close(key)
            await self.relay.close()

    def url(self, namespace: str, name: str, port: int | str | None = None) -> str | None:
        """The local URL of a Service port (the first port when none is given)."""
        for (ns, svc, _), listener in self._listeners.items():
            if (ns, svc) != (namespace, name):
                continue
            wanted = listener.service_port
            if port is None or port in (wanted.get("port"), wanted.get("name")):
                return f"http://{self.host}:{listener.port}"
        return None

    def _on_event(self, event_type: str, service: dict[str, Any]) -> None:
        task = asyncio.create_task(self._sync(event_type, service))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _sync(self, event_type: str, service: dict[str, Any]) -> None:
        async with self._lock:
            await self._sync_listeners(event_type, service)

    async def _sync_listeners(self, event_type: str, service: dict[str, Any]) -> None:
        metadata = service["metadata"]
        namespace, name = metadata.get("namespace", "default"), metadata["name"]
        spec = service.get("spec") or {}
        wanted: dict[int, dict[str, Any]] = {}
        if event_type != "DELETED" and _proxied(spec) and not _is_api_server(namespace, name):
            wanted = {int(p["port"]): p for p in spec.get("ports") or []}
        for key in [k for k in self._listeners if k[:2] == (namespace, name)]:
            if key[2] not in wanted:
                await self._close(key)
        for number, service_port in wanted.items():
            key = (namespace, name, number)
            if key in self._listeners:
                # The local port stays; only what it forwards to may change.
                self._listeners[key].service_port = service_port
            else:
                self._listeners[key] = await self._open(key, service_port)
        if wanted:
            self._record(service)
            if spec.get("type") == "LoadBalancer":
                self._record_load_balancer(namespace, name, service)

    async def _open(self, key: tuple[str, str, int], service_port: dict[str, Any]) -> _Listener:
        namespace, name, _ = key

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.forward(request, namespace, name, self._listeners[key].service_port)

        runner, port = await serve(self.host, handle)
        return _Listener(service_port, runner, port)

    async def _close(self, key: tuple[str, str, int]) -> None:
        listener = self._listeners.pop(key, None)
        if listener is not None:
            await listener.runner.cleanup()

    def _record(self, service: dict[str, Any]) -> None:
        """Write the local URL and per-port local ports to the Service's annotations."""
        metadata = service["metadata"]
        namespace, name = metadata.get("namespace", "default"), metadata["name"]
        ports = {
            str(number): listener.port
            for (ns, svc, number), listener in sorted(self._listeners.items())
            if (ns, svc) == (namespace, name)
        }
        first = (service.get("spec") or {}).get("ports", [{}])[0].get("port")
        url = f"http://{self.host}:{ports.get(str(first), next(iter(ports.values())))}"
        annotations = metadata.get("annotations") or {}
        wanted = {URL_ANNOTATION: url, PORTS_ANNOTATION: json.dumps(ports, sort_keys=True)}
        if all(annotations.get(k) == v for k, v in wanted.items()):
            return
        self._patch_service(namespace, name, {"metadata": {"annotations": wanted}})

    def _record_load_balancer(self, namespace: str, name: str, service: dict[str, Any]) -> None:
        ingress = [{"ip": self.host}]
        if ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") == ingress:
            return
        self._patch_service(
            namespace, name, {"status": {"loadBalancer": {"ingress": ingress}}}, "status"
        )

    def _patch_service(
        self, namespace: str, name: str, patch: dict[str, Any], subresource: str | None = None
    ) -> None:
        """Merge-patch a Service; a Service deleted meanwhile is no error."""
        with contextlib.suppress(ApiError):
            self.store.patch(
                "",
                "services",
                namespace,
                name,
                patch,
                MERGE_PATCH,
                subresource=subresource,
            )

    async def forward(
        self, request: web.Request, namespace: str, name: str, service_port: Mapping[str, Any]
    ) -> web.Response:
        """Forward a request to a ready backend of a Service port, the next in turn first:
        503 when there is none, 502 when no backend answers."""
        backends = self.backends.candidates(namespace, name, service_port)
        if not backends:
            return web.Response(
                status=503,
                text=f"no ready endpoints with a local port for service {namespace}/{name} "
                f"port {service_port.get('port')}\n",
            )
        try:
            return await self.relay.forward(request, backends, str(request.rel_url))
        except BackendError as error:
            return web.Response(status=502, text=f"service {namespace}/{name}: {error}\n")


class ServiceBackends:
    """The ready backends (local ports) of Service ports, in round-robin order, as kube-proxy
    reads them from Endpoints."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._turns: dict[tuple[str, str, int], itertools.count[int]] = {}

    def candidates(self, namespace: str, name: str, service_port: Mapping[str, Any]) -> list[int]:
        """Every ready backend of a Service port, starting with the next one in turn."""
        backends = self._ready(namespace, name, service_port)
        if not backends:
            return []
        turn = self._turns.setdefault(
            (namespace, name, int(service_port["port"])), itertools.count()
        )
        start = next(turn) % len(backends)
        return backends[start:] + backends[:start]

    def _ready(self, namespace: str, name: str, service_port: Mapping[str, Any]) -> list[int]:
        """The local ports of the ready pods behind a Service port, in a stable order."""
        try:
            endpoints = self.store.get("", "endpoints", namespace, name)
        except ApiError:
            return []
        backends: list[int] = []
        for subset in endpoints.get("subsets") or []:
            target = _subset_port(subset, service_port)
            if target is None:
                continue
            for address in subset.get("addresses") or []:
                local = self._local_port(namespace, address, target)
                if local is not None:
                    backends.append(local)
        return backends

    def _local_port(self, namespace: str, address: Mapping[str, Any], target: int) -> int | None:
        reference = address.get("targetRef") or {}
        if reference.get("kind") != "Pod":
            return target
        try:
            pod = self.store.get(
                "", "pods", reference.get("namespace", namespace), reference["name"]
            )
        except ApiError:
            return None
        return local_port(pod, target)


def local_port(pod: Mapping[str, Any], container_port: int) -> int | None:
    """The 127.0.0.1 port a process pod's container port listens on (None: no such port)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    local = json.loads(annotations.get(PORTS_ANNOTATION, "{}")).get(str(container_port))
    return int(local) if local is not None else None


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to host:port (port 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _proxied(spec: Mapping[str, Any]) -> bool:
    return spec.get("type", "ClusterIP") in PROXIED_TYPES and spec.get("clusterIP") != "None"


def _is_api_server(namespace: str, name: str) -> bool:
    """Whether a Service is the API server's own: its clients speak TLS to the API server's
    port (KUBERNETES_SERVICE_HOST/PORT), which an HTTP proxy cannot forward."""
    return (namespace, name) == (API_SERVICE_NAMESPACE, API_SERVICE_NAME)


def _subset_port(subset: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """The endpoint port number serving a Service port (matched by name, as kube-proxy does)."""
    for port in subset.get("ports") or []:
        if port.get("name", "") == service_port.get("name", ""):
            return int(port["port"])
    return None
