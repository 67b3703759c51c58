"""API discovery: the unaggregated /api and /apis documents kubectl and clients read."""

from __future__ import annotations

from typing import Any

from gyre_local.apiserver import metrics
from gyre_local.store.store import ApiError, ResourceType, Store

_AGGREGATED_DISCOVERY = "as=APIGroupDiscoveryList"


def is_discovery(segments: list[str]) -> bool:
    """Whether a GET of /api or /apis path segments asks for discovery, not resources."""
    return len(segments) <= (2 if segments[0] == "api" else 3)


def document(store: Store, segments: list[str], accept: str, host: str) -> dict[str, Any]:
    """The discovery document of a path (APIVersions, APIGroupList, APIGroup or
    APIResourceList) for a client accepting `accept` and reaching the server at `host`."""
    if _AGGREGATED_DISCOVERY in accept and not _accepts_plain_json(accept):
        raise ApiError(406, "NotAcceptable", "only the unaggregated discovery form is served")
    types = store.resource_types()
    if segments == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        }
    if segments == ["apis"]:
        groups = sorted({t.group for t in types if t.group})
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_group_info(g, types) for g in groups] + [metrics.group_info()],
        }
    if segments[1:2] == [metrics.GROUP]:
        return _metrics_document(segments)
    if segments[0] == "api":
        group, version = "", segments[1]
    elif len(segments) == 2:
        if not any(t.group == segments[1] for t in types):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return {"kind": "APIGroup", "apiVersion": "v1", **_group_info(segments[1], types)}
    else:
        group, version = segments[1], segments[2]
    served = [t for t in types if t.group == group and version in t.versions]
    if not served:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [r for t in served for r in _api_resources(t)],
    }


def _metrics_document(segments: list[str]) -> dict[str, Any]:
    """The APIGroup or APIResourceList of the metrics API, as metrics-server's aggregated
    API serves them."""
    if len(segments) == 2:
        return {"kind": "APIGroup", "apiVersion": "v1", **metrics.group_info()}
    if segments[2] != metrics.VERSION:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": metrics.GROUP_VERSION,
        "resources": metrics.API_RESOURCES,
    }


def _accepts_plain_json(accept: str) -> bool:
    for media in accept.split(","):
        params = [p.strip() for p in media.split(";")]
        if params[0] in ("application/json", "*/*") and not any(
            p.startswith("as=") for p in params[1:]
        ):
            return True
    return False


def _group_info(group: str, types: list[ResourceType]) -> dict[str, Any]:
    versions: list[str] = []
    for rtype in types:
        if rtype.group == group:
            versions.extend(v for v in rtype.versions if v not in versions)
    preferred = next(t.version for t in types if t.group == group)
    return {
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
    }


def _api_resources(rtype: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": rtype.plural,
        "singularName": rtype.singular_name,
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": list(rtype.verbs),
    }
    if rtype.short_names:
        main["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        main["categories"] = list(rtype.categories)
    resources = [main]
    for sub in rtype.subresources:
        entry: dict[str, Any] = {
            "name": f"{rtype.plural}/{sub}",
            "singularName": "",
            "namespaced": rtype.namespaced,
            "kind": rtype.kind,
            "verbs": ["get", "patch", "update"],
        }
        if sub == "scale":
            entry.update(group="autoscaling", version="v1", kind="Scale")
        elif sub == "token":
            entry.update(
                group="authentication.k8s.io", version="v1", kind="TokenRequest", verbs=["create"]
            )
        elif sub == "eviction":
            entry.update(group="policy", version="v1", kind="Eviction", verbs=["create"])
        elif sub == "log":
            entry.update(kind="Pod", verbs=["get"])
        elif sub == "proxy":
            entry.update(
                kind=f"{rtype.kind}ProxyOptions",
                verbs=["create", "delete", "get", "patch", "update"],
            )
        resources.append(entry)
    return resources
