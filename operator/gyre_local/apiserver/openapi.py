"""OpenAPI v3 documents describing the served resources, as kubectl reads them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gyre_local.store.builtins import CRD_GROUP, CRD_PLURAL, ResourceType
from gyre_local.store.store import ApiError, Store

_QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")
# Strategic merge patch is left out on purpose: kubectl then computes it from its compiled-in
# types, which carry the merge keys these documents do not describe.
_PATCH_CONTENT_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)


def _group_versions(store: Store) -> list[tuple[str, str]]:
    pairs = {(t.group, v) for t in store.resource_types() for v in t.versions}
    return sorted(pairs)


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(rtype: ResourceType, version: str) -> str:
    reversed_group = (
        ".".join(reversed(rtype.group.split("."))) if rtype.group else "io.k8s.api.core"
    )
    return f"{reversed_group}.{version}.{rtype.kind}"


def _operation(gvk: dict[str, str], schema_ref: dict[str, Any], verb: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
            for name in _QUERY_PARAMETERS
        ],
        "responses": {"200": {"content": {"application/json": {"schema": schema_ref}}}},
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": gvk,
    }
    if verb == "patch":
        operation["requestBody"] = {
            "content": {t: {"schema": {"type": "object"}} for t in _PATCH_CONTENT_TYPES}
        }
    elif verb in ("post", "put"):
        operation["requestBody"] = {"content": {"application/json": {"schema": schema_ref}}}
    return operation


def _paths(rtype: ResourceType, version: str) -> dict[str, Any]:
    gvk = {"group": rtype.group, "version": version, "kind": rtype.kind}
    ref = {"$ref": f"#/components/schemas/{_schema_name(rtype, version)}"}
    prefix = f"/{_gv_path(rtype.group, version)}"
    if rtype.namespaced:
        prefix += "/namespaces/{namespace}"
    collection = f"{prefix}/{rtype.plural}"
    item = f"{collection}/{{name}}"
    paths: dict[str, Any] = {
        collection: {
            "get": _operation(gvk, ref, "list"),
            "post": _operation(gvk, ref, "post"),
            "delete": _operation(gvk, ref, "deletecollection"),
        },
        item: {
            "get": _operation(gvk, ref, "get"),
            "put": _operation(gvk, ref, "put"),
            "patch": _operation(gvk, ref, "patch"),
            "delete": _operation(gvk, ref, "delete"),
        },
    }
    for sub in rtype.subresources:
        if sub in ("status", "scale"):
            paths[f"{item}/{sub}"] = {
                "get": _operation(gvk, ref, "get"),
                "put": _operation(gvk, ref, "put"),
                "patch": _operation(gvk, ref, "patch"),
            }
    return paths


def _component_schema(store: Store, rtype: ResourceType, version: str) -> dict[str, Any]:
    gvk = [{"group": rtype.group, "version": version, "kind": rtype.kind}]
    custom = store.schema(rtype, version) if not store.is_builtin(rtype) else None
    schema: dict[str, Any] = dict(custom) if custom else {"type": "object"}
    if custom:
        properties = dict(schema.get("properties") or {})
        properties.setdefault("apiVersion", {"type": "string"})
        properties.setdefault("kind", {"type": "string"})
        properties.setdefault("metadata", {"type": "object"})
        schema["properties"] = properties
    schema["x-kubernetes-group-version-kind"] = gvk
    return schema


def group_version_document(store: Store, group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group/version, or None if it is not served."""
    types = [t for t in store.resource_types() if t.group == group and version in t.versions]
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rtype in types:
        paths.update(_paths(rtype, version))
        if not store.is_builtin(rtype):
            schemas[_schema_name(rtype, version)] = _component_schema(store, rtype, version)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _hash(document: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32].upper()


def document(store: Store, path: str) -> dict[str, Any] | None:
    """The OpenAPI document served at a /openapi/... path, or None when there is none."""
    if path == "/openapi/v3":
        index: dict[str, Any] = {}
        for group, version in _group_versions(store):
            doc = group_version_document(store, group, version)
            if doc is not None:
                gv = _gv_path(group, version)
                index[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_hash(doc)}"}
        return {"paths": index}
    if not path.startswith("/openapi/v3/"):
        return None
    parts = path.removeprefix("/openapi/v3/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        return group_version_document(store, "", parts[1])
    if parts[0] == "apis" and len(parts) == 3:
        return group_version_document(store, parts[1], parts[2])
    return None


def printer_columns(store: Store, rtype: ResourceType, version: str) -> list[dict[str, Any]]:
    """The additionalPrinterColumns a CRD declares for one version of its kind."""
    try:
        crd = store.get(CRD_GROUP, CRD_PLURAL, None, f"{rtype.plural}.{rtype.group}")
    except ApiError:
        return []
    for entry in crd.get("spec", {}).get("versions", []):
        if entry.get("name") == version:
            columns: list[dict[str, Any]] = entry.get("additionalPrinterColumns") or []
            return columns
    return []
