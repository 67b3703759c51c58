"""The proxy subresources of pods and Services, as kube-apiserver serves them.

`/api/v1/namespaces/{namespace}/pods/{id}/proxy[/{path}]` and
`/api/v1/namespaces/{namespace}/services/{id}/proxy[/{path}]`, where id is `name`,
`name:port` or `http:name:port`. Every method is forwarded with its path, query and body to
the pod's local port (process pods) or to one ready endpoint of the Service, and the response
comes back. Failures are answered with the Status objects kube-apiserver uses.
"""

from __future__ import annotations

import re
import socket
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gyre_local.proxy.relay import BackendError, Relay
from gyre_local.proxy.services import ServiceBackends, local_port
from gyre_local.store.store import ApiError, Store, bad_request

SUBRESOURCE = "proxy"
PROXY_PATH = re.compile(
    r"/api/v1/namespaces/(?P<namespace>[^/]+)/(?P<plural>pods|services)/(?P<id>[^/]+)"
    r"/proxy(?P<path>/.*)?"
)
# What Go leaves unescaped in a URL path: RFC 3986 pchar characters and "/".
_PATH_SAFE = "/!$&'()*+,;=:@"
_TERMINAL_PHASES = ("Succeeded", "Failed")


class ApiProxy:
    """Forwards proxy subresource requests; relay.open() before serving, relay.close() after."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.relay = Relay()
        self.backends = ServiceBackends(store)

    async def handle(self, request: web.Request, match: re.Match[str]) -> web.Response:
        """The backend's response to a request whose path matched PROXY_PATH; ApiError when
        the target cannot be resolved or reached."""
        namespace, plural, identifier = match["namespace"], match["plural"], match["id"]
        name, port = _split_id(identifier, plural)
        if plural == "pods":
            backend = self._pod_backend(namespace, name, port)
        else:
            backend = self._service_backend(namespace, name, port, identifier)
        target = quote(match["path"] or "/", safe=_PATH_SAFE)
        if query := request.rel_url.raw_query_string:
            target = f"{target}?{query}"
        try:
            return await self.relay.forward(request, [backend], target)
        except BackendError as error:
            raise _unreachable(str(error)) from error

    def _pod_backend(self, namespace: str, name: str, port: str) -> int:
        """The local port serving a pod's port."""
        pod = self.store.get("", "pods", namespace, name)
        status = pod.get("status") or {}
        if not status.get("podIP"):
            raise bad_request("address not allowed")
        # A finished pod's local port may belong to another pod by now.
        if status.get("phase") in _TERMINAL_PHASES:
            raise _unreachable(f"pod {namespace}/{name} is {status['phase']}")
        number = _pod_port(pod, port)
        local = local_port(pod, number)
        if local is None:
            raise _unreachable(
                f"pod {namespace}/{name} has no local port for port {number}: only the declared "
                "container ports of process pods listen locally"
            )
        return local

    def _service_backend(self, namespace: str, name: str, port: str, identifier: str) -> int:
        """One ready backend of a Service port, as kube-apiserver's Service proxy picks it."""
        service = self.store.get("", "services", namespace, name)
        ports: list[dict[str, Any]] = (service.get("spec") or {}).get("ports") or []
        if port.isdigit():
            service_port = next((p for p in ports if p.get("port") == int(port)), None)
            if service_port is None:
                raise _unavailable(f'no service port {port} found for service "{name}"')
        else:
            # A name (none: the single unnamed port) must be the name of a Service port.
            service_port = next((p for p in ports if p.get("name", "") == port), None)
        backends = self.backends.candidates(namespace, name, service_port) if service_port else []
        if not backends:
            raise _unavailable(f'no endpoints available for service "{identifier}"')
        # kube-apiserver dials one endpoint and tries no other.
        return backends[0]


def _split_id(identifier: str, plural: str) -> tuple[str, str]:
    """(name, port) of `name`, `name:port` or `scheme:name:port` (port "" when not given)."""
    parts = identifier.split(":")
    if len(parts) == 3:
        scheme, name, port = parts
    else:
        scheme, name, port = "", parts[0], (parts[1] if len(parts) == 2 else "")
    if len(parts) > 3 or not name or scheme not in ("", "http", "https"):
        raise bad_request(f'invalid {plural[:-1]} request "{identifier}"')
    if scheme == "https":
        raise bad_request(f'the local cluster proxies plain http only: "{identifier}"')
    return name, port


def _pod_port(pod: dict[str, Any], port: str) -> int:
    """The port kube-apiserver dials: the one given, else the first container port, else 80.

    A name is not looked up among the container ports: kube-apiserver hands it to its dialer,
    which knows only service names (http is 80).
    """
    if not port:
        for container in (pod.get("spec") or {}).get("containers") or []:
            if container.get("ports"):
                return int(container["ports"][0]["containerPort"])
        return 80
    if port.isdigit():
        return int(port)
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        raise _unreachable(f"dial tcp: lookup tcp/{port}: unknown port") from None


def _unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def _unreachable(reason: str) -> ApiError:
    """The error kube-apiserver's proxy transport wraps every failure to reach a backend in."""
    return _unavailable(f"error trying to reach service: {reason}")
