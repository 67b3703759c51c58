"""The resource metrics API (metrics.k8s.io/v1beta1) as metrics-server serves it: PodMetrics
and NodeMetrics read from the kubelet's usage samples, for `kubectl top` and the
HorizontalPodAutoscaler controller.

Pods the kubelet has no usage for (simulated pods, containers sampled fewer than twice) are
left out of lists, and a get of one is metrics-server's 404.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from gyre_local.clock import now_rfc3339
from gyre_local.kubelet.usage import Usage
from gyre_local.quantities import decimal_quantity, memory_quantity
from gyre_local.store.store import ApiError, Store

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
METRICS_PATH = re.compile(
    rf"/apis/{re.escape(GROUP_VERSION)}(?:/namespaces/(?P<namespace>[^/]+))?"
    r"/(?P<plural>pods|nodes)(?:/(?P<name>[^/]+))?/?"
)
API_RESOURCES: list[dict[str, Any]] = [
    {
        "name": "nodes",
        "singularName": "",
        "namespaced": False,
        "kind": "NodeMetrics",
        "verbs": ["get", "list"],
    },
    {
        "name": "pods",
        "singularName": "",
        "namespaced": True,
        "kind": "PodMetrics",
        "verbs": ["get", "list"],
    },
]
_METRICS_RESOURCES = {"pods": "podmetrics", "nodes": "nodemetrics"}
_METRICS_KINDS = {"pods": "PodMetrics", "nodes": "NodeMetrics"}


class MetricsProvider(Protocol):
    """The node's usage samples, as metrics-server scrapes them from the kubelet."""

    def pod_usage(self, uid: str) -> Mapping[str, Usage]:
        """{container: usage} of a pod's sampled running containers (empty when none)."""

    def node_usage(self) -> Usage | None:
        """The node's usage, None before it was sampled twice."""


class NoMetrics:
    """The provider of a cluster without a kubelet: nothing was ever sampled."""

    def pod_usage(self, uid: str) -> Mapping[str, Usage]:
        """No pod has usage."""
        return {}

    def node_usage(self) -> Usage | None:
        """The node has no usage."""
        return None


METRICS_KEY: web.AppKey[MetricsProvider] = web.AppKey("metrics")


def group_info() -> dict[str, Any]:
    """The group's entry in the /apis APIGroupList (and its APIGroup document)."""
    version = {"groupVersion": GROUP_VERSION, "version": VERSION}
    return {"name": GROUP, "versions": [version], "preferredVersion": version}


def duration(seconds: float) -> str:
    """A window as Go formats a time.Duration ("10.004s", "0s")."""
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _usage(usage: Usage) -> dict[str, str]:
    return {
        "cpu": decimal_quantity(usage.cpu_nanocores),
        "memory": memory_quantity(usage.memory_bytes),
    }


def pod_metrics(pod: Mapping[str, Any], usages: Mapping[str, Usage]) -> dict[str, Any] | None:
    """The PodMetrics of a pod from its containers' usage (None without any), in the pod's
    container order."""
    order = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    names = sorted(usages, key=lambda n: order.index(n) if n in order else len(order))
    if not names:
        return None
    meta = pod["metadata"]
    first = usages[names[0]]
    return {
        "kind": "PodMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": _metadata(meta, namespaced=True),
        "timestamp": first.timestamp,
        "window": duration(first.window_seconds),
        "containers": [{"name": name, "usage": _usage(usages[name])} for name in names],
    }


def node_metrics(node: Mapping[str, Any], usage: Usage) -> dict[str, Any]:
    """The NodeMetrics of a node."""
    return {
        "kind": "NodeMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": _metadata(node["metadata"], namespaced=False),
        "timestamp": usage.timestamp,
        "window": duration(usage.window_seconds),
        "usage": _usage(usage),
    }


def _metadata(meta: Mapping[str, Any], *, namespaced: bool) -> dict[str, Any]:
    """metrics-server's metadata: the object's name, namespace and labels, created now."""
    metadata: dict[str, Any] = {"name": meta["name"]}
    if namespaced:
        metadata["namespace"] = meta.get("namespace", "")
    metadata["creationTimestamp"] = now_rfc3339()
    if meta.get("labels"):
        metadata["labels"] = dict(meta["labels"])
    return metadata


def serve(request: web.Request, store: Store, match: re.Match[str]) -> dict[str, Any]:
    """A get or list of PodMetrics or NodeMetrics."""
    if request.method != "GET":
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    plural, namespace, name = match["plural"], match["namespace"], match["name"]
    if plural == "nodes" and namespace is not None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    provider = request.app[METRICS_KEY]
    if name is not None:
        source = store.get("", plural, namespace, name)
        found = _metrics(plural, source, provider)
        if found is None:
            missing = f"{namespace}/{name}" if namespace else name
            resource = _METRICS_RESOURCES[plural]
            raise ApiError(
                404,
                "NotFound",
                f'{resource}.{GROUP} "{missing}" not found',
                {"name": missing, "group": GROUP, "kind": resource},
            )
        return found
    sources, _version = store.list(
        "",
        plural,
        namespace,
        label_selector=request.query.get("labelSelector"),
        field_selector=request.query.get("fieldSelector"),
    )
    items = [m for s in sources if (m := _metrics(plural, s, provider)) is not None]
    return {
        "kind": f"{_METRICS_KINDS[plural]}List",
        "apiVersion": GROUP_VERSION,
        "metadata": {},
        "items": items,
    }


def _metrics(
    plural: str, source: Mapping[str, Any], provider: MetricsProvider
) -> dict[str, Any] | None:
    """The metrics of a pod or node, None when it has none yet."""
    if plural == "pods":
        return pod_metrics(source, provider.pod_usage(source["metadata"].get("uid", "")))
    usage = provider.node_usage()
    return node_metrics(source, usage) if usage is not None else None
