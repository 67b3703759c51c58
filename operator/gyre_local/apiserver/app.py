"""The HTTP face of the local cluster: Kubernetes REST paths over aiohttp, backed by a Store."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from gyre_local.apiserver import (
    discovery,
    eviction,
    metrics,
    openapi,
    protobuf,
    proxying,
    reviews,
    streaming,
    tables,
)
from gyre_local.store.builtins import converts, from_version, to_version
from gyre_local.store.patching import APPLY_PATCH, PATCH_TYPES
from gyre_local.store.store import ApiError, ResourceType, Store, Watch, bad_request

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "local",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# How often an idle watch checks whether its client went away.
_WATCH_LIVENESS_SECONDS = 5.0
_STORE_KEY = web.AppKey("store", Store)
_PROXY_KEY = web.AppKey("proxy", proxying.ApiProxy)


def create_app(
    store: Store,
    pod_processes: streaming.PodProcesses = streaming.no_processes,
    usage: metrics.MetricsProvider | None = None,
) -> web.Application:
    """An aiohttp application serving the Kubernetes API of a store; exec, attach,
    port-forward and timed logs reach the containers pod_processes finds (the kubelet's), the
    metrics API serves the usage samples of `usage` (the kubelet's)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_STORE_KEY] = store
    app[streaming.PROCESSES_KEY] = pod_processes
    app[metrics.METRICS_KEY] = usage or metrics.NoMetrics()
    app[_PROXY_KEY] = proxy = proxying.ApiProxy(store)
    app.on_startup.append(lambda _app: proxy.relay.open())
    app.on_cleanup.append(lambda _app: proxy.relay.close())
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")),
        status=status,
        content_type="application/json",
    )


def _error(error: ApiError) -> web.Response:
    return _json(error.status(), error.code)


async def _dispatch(request: web.Request) -> web.StreamResponse:
    store = request.app[_STORE_KEY]
    try:
        return await _route(request, store)
    except ApiError as error:
        return _error(error)


async def _route(request: web.Request, store: Store) -> web.StreamResponse:
    if (match := proxying.PROXY_PATH.fullmatch(request.path)) is not None:
        return await request.app[_PROXY_KEY].handle(request, match)
    if (match := streaming.STREAM_PATH.fullmatch(request.path)) is not None:
        return await streaming.serve(request, store, match)
    path = request.path.rstrip("/") or "/"
    if path in ("/healthz", "/readyz", "/livez") or path.startswith(("/healthz/", "/readyz/")):
        return web.Response(text="ok")
    if path == "/version":
        return _json(SERVER_VERSION)
    if path.startswith("/openapi/"):
        document = openapi.document(store, path)
        if document is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(document)
    if (match := metrics.METRICS_PATH.fullmatch(path)) is not None:
        return _json(metrics.serve(request, store, match))
    segments = [s for s in path.split("/") if s]
    if segments[:1] == ["api"] or segments[:1] == ["apis"]:
        if request.method == "GET" and discovery.is_discovery(segments):
            accept = request.headers.get("Accept", "")
            return _json(discovery.document(store, segments, accept, request.host))
        return await _resource_request(request, store, segments)
    raise ApiError(404, "NotFound", "the server could not find the requested resource")


# ---- resources ----


@dataclass(frozen=True)
class _Target:
    rtype: ResourceType
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None
    watch: bool


def _parse_target(store: Store, segments: list[str]) -> _Target:
    if segments[0] == "api":
        group, version, rest = "", segments[1], segments[2:]
    else:
        group, version, rest = segments[1], segments[2], segments[3:]
    watch = rest[:1] == ["watch"]
    if watch:
        rest = rest[1:]
    namespace = None
    namespace_subresource = group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")
    if len(rest) >= 3 and rest[0] == "namespaces" and not namespace_subresource:
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    rtype = store.resource(group, rest[0])
    if version not in rtype.versions or (namespace is not None and not rtype.namespaced):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    # The proxy subresource is served on namespaced paths only, by proxying.ApiProxy.
    if subresource is not None and (
        subresource not in rtype.subresources or subresource == proxying.SUBRESOURCE
    ):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return _Target(rtype, version, namespace, name, subresource, watch)


def _present(target: _Target, obj: dict[str, Any], *, as_table: bool = False) -> dict[str, Any]:
    """An object as seen through the version the client asked for (`obj` is left unchanged:
    a watch event's object is the stored state itself). Table rows of a converted version
    are printed from (and embed) the stored form, as kube-apiserver prints them from its
    internal one."""
    rtype = target.rtype
    if as_table and converts(rtype, target.version):
        return obj
    if rtype.group and obj.get("kind") == rtype.kind:
        obj = to_version(rtype, target.version, obj)
        api_version = f"{rtype.group}/{target.version}"
        if obj.get("apiVersion") != api_version:
            return {**obj, "apiVersion": api_version}
    return obj


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    decoded = protobuf.decode_object(raw) if protobuf.is_protobuf(raw) else None
    if decoded is not None:
        return decoded
    if "protobuf" in content_type or "cbor" in content_type:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json, application/yaml (the local cluster does not read protobuf, which "
            "`kubectl create KIND NAME` sends: use `kubectl apply -f FILE`, or "
            "`kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`)",
        )
    try:
        if content_type == APPLY_PATCH or content_type.endswith("yaml"):
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as error:
        raise bad_request(f"the body of the request could not be decoded: {error}") from error


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    if any(v != "All" for v in values):
        raise bad_request(f"unsupported dryRun value {values!r}")
    return bool(values)


def _field_manager(request: web.Request) -> str | None:
    manager = request.query.get("fieldManager")
    if manager:
        return manager
    agent = request.headers.get("User-Agent", "")
    return agent.split("/")[0] or None


async def _resource_request(
    request: web.Request, store: Store, segments: list[str]
) -> web.StreamResponse:
    target = _parse_target(store, segments)
    if reviews.handles(target.rtype, target.subresource):
        answer = reviews.create(
            store,
            target.rtype,
            target.namespace,
            target.name,
            request.method,
            await request.read(),
            request.headers.get("Content-Type", ""),
            request.headers.get("Authorization", ""),
        )
        return _json(answer, 201)
    if eviction.handles(target.rtype, target.subresource) and target.name:
        if request.method != "POST":
            raise ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on eviction")
        answer = eviction.evict(
            store,
            target.namespace or "",
            target.name,
            await _body(request),
            dry_run=_dry_run(request),
        )
        return _json(answer, 201)
    if target.name is None:
        return await _collection_request(request, store, target)
    return await _object_request(request, store, target, target.name)


async def _collection_request(
    request: web.Request, store: Store, target: _Target
) -> web.StreamResponse:
    group, plural, method = target.rtype.group, target.rtype.plural, request.method
    if method == "GET":
        if target.watch or request.query.get("watch") in ("true", "1"):
            return await _watch(request, store, target)
        return _list(request, store, target)
    if method == "POST":
        body = _versioned_body(target, await _body(request))
        created = store.create(
            group,
            plural,
            target.namespace,
            body,
            dry_run=_dry_run(request),
            field_manager=_field_manager(request),
            field_validation=request.query.get("fieldValidation"),
        )
        return _json(_present(target, created), 201)
    if method == "DELETE":
        options = await _body(request) or {}
        removed = store.delete_collection(
            group,
            plural,
            target.namespace,
            label_selector=request.query.get("labelSelector"),
            field_selector=request.query.get("fieldSelector"),
            propagation_policy=_propagation(request, options),
            dry_run=_dry_run(request),
        )
        return _json(_list_object(target, [_present(target, o) for o in removed], None))
    raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")


async def _object_request(
    request: web.Request, store: Store, target: _Target, name: str
) -> web.StreamResponse:
    group, plural, method = target.rtype.group, target.rtype.plural, request.method
    if method == "GET":
        if target.subresource == "log":
            return await streaming.serve_log(request, store, target.namespace or "", name)
        as_table = "as=Table" in request.headers.get("Accept", "") and target.subresource is None
        obj = _present(
            target,
            store.get(group, plural, target.namespace, name, subresource=target.subresource),
            as_table=as_table,
        )
        if as_table:
            meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
            return _json(
                tables.table(
                    store,
                    target.rtype,
                    target.version,
                    [obj],
                    meta,
                    request.query.get("includeObject"),
                )
            )
        return _json(obj)
    if method == "PUT":
        body = _versioned_body(target, await _body(request))
        updated = store.replace(
            group,
            plural,
            target.namespace,
            name,
            body,
            subresource=target.subresource,
            dry_run=_dry_run(request),
            field_manager=_field_manager(request),
            field_validation=request.query.get("fieldValidation"),
        )
        return _json(_present(target, updated))
    if method == "PATCH":
        return await _patch(request, store, target, name)
    if method == "DELETE":
        options = await _body(request) or {}
        deleted = store.delete(
            group,
            plural,
            target.namespace,
            name,
            propagation_policy=_propagation(request, options),
            dry_run=_dry_run(request) or options.get("dryRun") == ["All"],
        )
        return _json(_deletion_response(store, target, deleted))
    raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed")


def _versioned_body(target: _Target, body: Any) -> Any:
    """A request body with the URL's apiVersion when it names none, in the stored form when
    it is of a version that converts."""
    rtype = target.rtype
    if not isinstance(body, dict) or not rtype.group:
        return body
    api_version = f"{rtype.group}/{target.version}"
    body.setdefault("apiVersion", api_version)
    body["apiVersion"] = body["apiVersion"] or api_version
    if body["apiVersion"] == api_version and converts(rtype, target.version):
        return from_version(rtype, target.version, body)
    return body


def _propagation(request: web.Request, options: dict[str, Any]) -> str | None:
    policy = request.query.get("propagationPolicy") or options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is True:
        return "Orphan"
    return policy


async def _patch(
    request: web.Request, store: Store, target: _Target, name: str
) -> web.StreamResponse:
    patch_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    if patch_type not in PATCH_TYPES:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(PATCH_TYPES)}",
        )
    body = await _body(request)
    rtype = target.rtype
    status = 200
    if patch_type == APPLY_PATCH:
        body = _versioned_body(target, body)
        try:
            store.get(rtype.group, rtype.plural, target.namespace, name)
        except ApiError:
            status = 201
    patched = store.patch(
        rtype.group,
        rtype.plural,
        target.namespace,
        name,
        body,
        patch_type,
        subresource=target.subresource,
        field_manager=request.query.get("fieldManager")
        or (None if patch_type == APPLY_PATCH else _field_manager(request)),
        force=request.query.get("force") in ("true", "1"),
        dry_run=_dry_run(request),
        field_validation=request.query.get("fieldValidation"),
        version=target.version,
    )
    return _json(_present(target, patched), status)


def _deletion_response(store: Store, target: _Target, deleted: dict[str, Any]) -> dict[str, Any]:
    rtype = target.rtype
    meta = deleted["metadata"]
    still_present = True
    try:
        store.get(rtype.group, rtype.plural, target.namespace, meta["name"])
    except ApiError:
        still_present = False
    # Like kube-apiserver's registries with ReturnDeletedObject (pods, services, custom
    # resources), these answer with the deleted object instead of a Status.
    if still_present or not store.is_builtin(rtype) or rtype.kind in ("Pod", "Service"):
        return _present(target, deleted)
    details: dict[str, Any] = {"name": meta["name"]}
    if rtype.group:
        details["group"] = rtype.group
    details.update(kind=rtype.plural, uid=meta["uid"])
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def _list_object(
    target: _Target, items: list[dict[str, Any]], page_meta: dict[str, Any] | None
) -> dict[str, Any]:
    rtype = target.rtype
    api_version = f"{rtype.group}/{target.version}" if rtype.group else target.version
    return {
        "kind": f"{rtype.kind}List",
        "apiVersion": api_version,
        "metadata": page_meta or {},
        "items": items,
    }


def _list(request: web.Request, store: Store, target: _Target) -> web.Response:
    rtype = target.rtype
    limit_text = request.query.get("limit")
    if limit_text is not None and not limit_text.isdigit():
        raise bad_request(f"invalid limit {limit_text!r}")
    page = store.list_page(
        rtype.group,
        rtype.plural,
        target.namespace,
        label_selector=request.query.get("labelSelector"),
        field_selector=request.query.get("fieldSelector"),
        limit=int(limit_text) if limit_text else None,
        continue_token=request.query.get("continue"),
    )
    meta: dict[str, Any] = {"resourceVersion": page.resource_version}
    if page.continue_token:
        meta["continue"] = page.continue_token
        meta["remainingItemCount"] = page.remaining
    as_table = "as=Table" in request.headers.get("Accept", "")
    items = [_present(target, item, as_table=as_table) for item in page.items]
    if as_table:
        return _json(
            tables.table(
                store, target.rtype, target.version, items, meta, request.query.get("includeObject")
            )
        )
    return _json(_list_object(target, items, meta))


async def _watch(request: web.Request, store: Store, target: _Target) -> web.StreamResponse:
    rtype = target.rtype
    timeout_text = request.query.get("timeoutSeconds")
    watch = store.watch(
        rtype.group,
        rtype.plural,
        target.namespace,
        resource_version=request.query.get("resourceVersion"),
        label_selector=request.query.get("labelSelector"),
        field_selector=request.query.get("fieldSelector"),
        allow_bookmarks=request.query.get("allowWatchBookmarks") in ("true", "1"),
        timeout_seconds=float(timeout_text) if timeout_text else None,
        read_only=True,  # each event is only serialized below
    )
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    watchdog = asyncio.create_task(_close_when_client_leaves(request, watch))
    try:
        await response.prepare(request)
        as_table = "as=Table" in request.headers.get("Accept", "")
        headers = True
        async for event_type, obj in watch:
            if event_type != "ERROR":
                obj = _present(target, obj, as_table=as_table)
            if as_table and event_type in ("ADDED", "MODIFIED", "DELETED"):
                # Like kube-apiserver, only a watch's first Table carries the column definitions.
                meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                include = request.query.get("includeObject")
                obj = tables.table(
                    store, rtype, target.version, [obj], meta, include, headers=headers
                )
                headers = False
            line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":"))
            await response.write(line.encode() + b"\n")
    except ConnectionResetError:
        pass
    finally:
        watch.close()
        watchdog.cancel()
    return response


async def _close_when_client_leaves(request: web.Request, watch: Watch) -> None:
    """Close an idle watch whose client went away (writes would only notice on the next event)."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(_WATCH_LIVENESS_SECONDS)
    watch.close()
