"""Server-side Table output (`Accept: ...;as=Table`): the columns `kubectl get` prints."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gyre_local.apiserver import openapi
from gyre_local.store.store import ResourceType, Store

_PATH_TOKEN = re.compile(
    r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)==\"([^\"]*)\"\)\]"
)


def _json_path(obj: Any, expression: str) -> Any:
    """Evaluate the simple JSONPath subset used by printer columns."""
    current: list[Any] = [obj]
    for field_name, index, filter_field, filter_value in _PATH_TOKEN.findall(expression):
        following: list[Any] = []
        for value in current:
            if field_name and isinstance(value, dict) and field_name in value:
                following.append(value[field_name])
            elif index and isinstance(value, list) and int(index) < len(value):
                following.append(value[int(index)])
            elif filter_field and isinstance(value, list):
                following.extend(
                    item
                    for item in value
                    if isinstance(item, dict) and str(item.get(filter_field)) == filter_value
                )
        current = following
    return current[0] if current else None


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "d" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _pod_status(pod: dict[str, Any]) -> str:
    """The STATUS kubectl shows: a waiting or terminated container's reason, else the phase."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        for key in ("waiting", "terminated"):
            reason = (state.get(key) or {}).get("reason")
            if reason:
                return str(reason)
    return str(status.get("phase", "Pending"))


def _pod_ready(pod: dict[str, Any]) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_restarts(pod: dict[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)


Column = tuple[str, str, Callable[[dict[str, Any]], Any]]
_AGE_COLUMN: Column = ("Age", "string", lambda o: _age(o["metadata"].get("creationTimestamp")))
_BUILTIN_COLUMNS: dict[str, list[Column]] = {
    "Pod": [
        ("Ready", "string", _pod_ready),
        ("Status", "string", _pod_status),
        ("Restarts", "integer", _pod_restarts),
    ],
    "Deployment": [
        (
            "Ready",
            "string",
            lambda o: (
                f"{_json_path(o, '.status.readyReplicas') or 0}/{_json_path(o, '.spec.replicas')}"
            ),
        ),
        ("Up-to-date", "integer", lambda o: _json_path(o, ".status.updatedReplicas") or 0),
        ("Available", "integer", lambda o: _json_path(o, ".status.availableReplicas") or 0),
    ],
    "Job": [
        (
            "Completions",
            "string",
            lambda o: (
                f"{_json_path(o, '.status.succeeded') or 0}/{_json_path(o, '.spec.completions')}"
            ),
        ),
    ],
    "Namespace": [("Status", "string", lambda o: _json_path(o, ".status.phase"))],
    "ConfigMap": [("Data", "integer", lambda o: len(o.get("data") or {}))],
}


def _columns(store: Store, rtype: ResourceType, version: str) -> list[tuple[Column, int]]:
    """The table columns after Name with their priorities, as kube-apiserver builds them.

    Built-in kinds and CRDs without printer columns end with Age; a CRD's declared columns
    replace that default, and its date columns show an age, like the apiserver's converter.
    """
    if store.is_builtin(rtype):
        return [(c, 0) for c in _BUILTIN_COLUMNS.get(rtype.kind, [])] + [(_AGE_COLUMN, 0)]
    declared = openapi.printer_columns(store, rtype, version)
    if not declared:
        return [(_AGE_COLUMN, 0)]
    return [
        (
            (
                spec["name"],
                spec.get("type", "string"),
                _path_cell(spec["jsonPath"], spec.get("type")),
            ),
            int(spec.get("priority", 0)),
        )
        for spec in declared
    ]


def _path_cell(expression: str, column_type: str | None) -> Callable[[dict[str, Any]], Any]:
    if column_type == "date":
        return lambda obj: _age(value) if (value := _json_path(obj, expression)) else None
    return lambda obj: _json_path(obj, expression)


def table(
    store: Store,
    rtype: ResourceType,
    version: str,
    items: list[dict[str, Any]],
    meta: dict[str, Any],
    include_object: str | None,
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of objects of one resource version, as `kubectl get` asks for
    (`includeObject=Object` embeds the whole objects, otherwise their metadata)."""
    columns = _columns(store, rtype, version)
    definitions = [{"name": "Name", "type": "string", "format": "name", "priority": 0}]
    definitions += [
        {"name": n, "type": "string" if t == "date" else t, "format": "", "priority": p}
        for (n, t, _), p in columns
    ]
    rows = []
    for item in items:
        cells = [item["metadata"]["name"], *(fn(item) for (_, _, fn), _ in columns)]
        if include_object == "Object":
            row_object: dict[str, Any] = item
        else:
            row_object = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": item["metadata"],
            }
        rows.append({"cells": cells, "object": row_object})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": definitions,
        "rows": rows,
    }
