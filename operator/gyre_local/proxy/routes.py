"""Gateway API HTTPRoutes served locally: each route gets a 127.0.0.1 port.

There is no Gateway: parentRefs and hostnames are not consulted. A request is matched to a
rule (path, headers, method, query parameters, with Gateway API precedence), a backendRef is
picked by smooth weighted round-robin over the rule's weights (so a 90/10 split is exact over
every ten requests), and the request goes to that Service's ready pods through the
ServiceProxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gyre_local.controllers.informer import watch_forever
from gyre_local.proxy.services import URL_ANNOTATION, Handler, ServiceProxy, serve
from gyre_local.store.patching import MERGE_PATCH
from gyre_local.store.store import ApiError, Store

GROUP = "gateway.networking.k8s.io"
PLURAL = "httproutes"
RouteKey = tuple[str, str]


class SmoothWeights:
    """Smooth weighted round-robin (as in nginx): deterministic and evenly interleaved."""

    def __init__(self) -> None:
        self._current: dict[int, int] = {}

    def pick(self, weights: Mapping[int, int]) -> int | None:
        """The next choice among weighted options (None when every weight is 0)."""
        total = sum(weights.values())
        if total <= 0:
            return None
        self._current = {k: self._current.get(k, 0) + w for k, w in weights.items()}
        chosen = max(weights, key=lambda k: self._current[k])
        self._current[chosen] -= total
        return chosen


def _path_matches(match: Mapping[str, Any], path: str) -> bool:
    kind = match.get("type", "PathPrefix")
    value = match.get("value", "/")
    if kind == "Exact":
        return bool(path == value)
    if kind == "RegularExpression":
        return re.fullmatch(value, path) is not None
    prefix = value.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _value_matches(match: Mapping[str, Any], actual: str | None) -> bool:
    if actual is None:
        return False
    if match.get("type", "Exact") == "RegularExpression":
        return re.fullmatch(match["value"], actual) is not None
    return bool(actual == match["value"])


def match_score(match: Mapping[str, Any], request: web.Request) -> tuple[int, int, int, int] | None:
    """How specifically one HTTPRouteMatch matches a request (None: no match)."""
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    if not _path_matches(path, request.path):
        return None
    if match.get("method") and match["method"] != request.method:
        return None
    headers = match.get("headers") or []
    if not all(_value_matches(h, request.headers.get(h["name"])) for h in headers):
        return None
    queries = match.get("queryParams") or []
    if not all(_value_matches(q, request.query.get(q["name"])) for q in queries):
        return None
    exact = 1 if path.get("type") == "Exact" else 0
    return exact, len(path.get("value", "/")), len(headers), len(queries)


def choose_rule(route: Mapping[str, Any], request: web.Request) -> int | None:
    """The index of the rule that serves a request, by Gateway API precedence."""
    best: tuple[tuple[int, int, int, int], int] | None = None
    for index, rule in enumerate((route.get("spec") or {}).get("rules") or []):
        for match in rule.get("matches") or [{}]:
            score = match_score(match, request)
            # Ties keep the earlier rule, as the specification orders them.
            if score is not None and (best is None or score > best[0]):
                best = (score, index)
    return None if best is None else best[1]


@dataclass
class _RouteListener:
    route: dict[str, Any]
    runner: web.AppRunner
    port: int
    weights: dict[int, SmoothWeights] = field(default_factory=dict)


class RouteProxy:
    """Serves each HTTPRoute on its own local port and records the URL on the route."""

    def __init__(self, store: Store, services: ServiceProxy) -> None:
        self.store = store
        self.services = services
        self._listeners: dict[RouteKey, _RouteListener] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Follow HTTPRoutes until cancelled, then close every listener."""
        try:
            await watch_forever(self.store, GROUP, PLURAL, self._on_event)
        finally:
            for task in list(self._pending):
                task.cancel()
            await asyncio.gather(*self._pending, return_exceptions=True)
            for listener in self._listeners.values():
                await listener.runner.cleanup()
            self._listeners.clear()

    def url(self, namespace: str, name: str) -> str | None:
        """The local URL of an HTTPRoute, once it is served."""
        listener = self._listeners.get((namespace, name))
        return None if listener is None else f"http://{self.services.host}:{listener.port}"

    def _on_event(self, event_type: str, route: dict[str, Any]) -> None:
        task = asyncio.create_task(self._sync(event_type, route))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _sync(self, event_type: str, route: dict[str, Any]) -> None:
        metadata = route["metadata"]
        key = (metadata.get("namespace", "default"), metadata["name"])
        async with self._lock:
            if event_type == "DELETED":
                listener = self._listeners.pop(key, None)
                if listener is not None:
                    await listener.runner.cleanup()
                return
            if key in self._listeners:
                self._listeners[key].route = route
            else:
                runner, port = await serve(self.services.host, self._handler(key))
                self._listeners[key] = _RouteListener(route, runner, port)
        self._record(key, route)

    def _record(self, key: RouteKey, route: dict[str, Any]) -> None:
        url = self.url(*key)
        if url is None or (route["metadata"].get("annotations") or {}).get(URL_ANNOTATION) == url:
            return
        patch = {"metadata": {"annotations": {URL_ANNOTATION: url}}}
        with contextlib.suppress(ApiError):
            self.store.patch(GROUP, PLURAL, *key, patch, MERGE_PATCH)

    def _handler(self, key: RouteKey) -> Handler:
        async def forward(request: web.Request) -> web.StreamResponse:
            listener = self._listeners[key]
            index = choose_rule(listener.route, request)
            if index is None:
                return web.Response(
                    status=404, text=f"no rule of HTTPRoute {key[0]}/{key[1]} matches\n"
                )
            rule = listener.route["spec"]["rules"][index]
            refs = [
                r
                for r in rule.get("backendRefs") or []
                if r.get("kind", "Service") == "Service" and r.get("group", "") == ""
            ]
            weights = {i: int(r.get("weight", 1)) for i, r in enumerate(refs)}
            chosen = listener.weights.setdefault(index, SmoothWeights()).pick(weights)
            if chosen is None:
                return web.Response(status=500, text="no backend with a weight above 0\n")
            return await self._to_service(request, key[0], refs[chosen])

        return forward

    async def _to_service(
        self, request: web.Request, namespace: str, ref: Mapping[str, Any]
    ) -> web.StreamResponse:
        namespace = ref.get("namespace", namespace)
        try:
            service = self.store.get("", "services", namespace, ref["name"])
        except ApiError:
            return web.Response(status=503, text=f"service {namespace}/{ref['name']} not found\n")
        ports = (service.get("spec") or {}).get("ports") or []
        port = next((p for p in ports if p.get("port") == ref.get("port")), None)
        if port is None and ports and "port" not in ref:
            port = ports[0]
        if port is None:
            return web.Response(
                status=503,
                text=f"service {namespace}/{ref['name']} has no port {ref.get('port')}\n",
            )
        return await self.services.forward(request, namespace, ref["name"], port)
