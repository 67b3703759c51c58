"""The rules of writing objects: names, namespaces, what a write may change, generations."""

from __future__ import annotations

import re
from typing import Any

from gyre_local.store.builtins import ResourceType
from gyre_local.store.errors import bad_request, invalid

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAMED_KINDS = frozenset({"Namespace", "Service"})
_IDENTITY_METADATA = ("name", "namespace", "uid", "creationTimestamp", "generation")


def scope_namespace(rtype: ResourceType, namespace: str | None, metadata: dict[str, Any]) -> str:
    """The namespace an object is written to (set into its metadata; "" when cluster-scoped)."""
    if not rtype.namespaced:
        metadata.pop("namespace", None)
        return ""
    body_namespace = metadata.get("namespace")
    if namespace and body_namespace and body_namespace != namespace:
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    scope = namespace or body_namespace or "default"
    metadata["namespace"] = scope
    return scope


def check_url_name(metadata: dict[str, Any] | None, name: str) -> None:
    """Raise BadRequest when a body names another object than the URL does."""
    body_name = (metadata or {}).get("name")
    if body_name and body_name != name:
        raise bad_request(
            f"the name of the object ({body_name}) does not match the name on the URL ({name})"
        )


def validate_name(rtype: ResourceType, name: str, *, builtin: bool) -> None:
    """Raise Invalid unless the name is a DNS subdomain (a DNS label for built-in Namespaces
    and Services)."""
    if not name:
        raise invalid(
            rtype,
            "",
            [
                (
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )
            ],
        )
    label = rtype.kind in _LABEL_NAMED_KINDS and builtin
    pattern, limit = (_DNS_LABEL, 63) if label else (_DNS_SUBDOMAIN, 253)
    if len(name) > limit or not pattern.match(name):
        what = "RFC 1123 label" if label else "RFC 1123 subdomain"
        detail = (
            f'Invalid value: "{name}": a lowercase {what} must consist of lower case '
            "alphanumeric characters, '-'"
            + ("" if label else " or '.'")
            + ", and must start and end with an alphanumeric character"
        )
        raise invalid(rtype, name, [("FieldValueInvalid", "metadata.name", detail)])


def merge_for_write(
    rtype: ResourceType, old: dict[str, Any], new: dict[str, Any], subresource: str | None
) -> dict[str, Any]:
    """The object a write stores: the new status alone through the status subresource, else
    the new object keeping the old identity metadata and (where a subresource owns it) status."""
    if subresource == "status":
        return with_status_of(old, new)
    merged = new
    merged["apiVersion"] = old["apiVersion"]
    merged["kind"] = old["kind"]
    meta = merged["metadata"]
    for key in (*_IDENTITY_METADATA, "deletionTimestamp", "deletionGracePeriodSeconds"):
        if key in old["metadata"]:
            meta[key] = old["metadata"][key]
        else:
            meta.pop(key, None)
    meta["resourceVersion"] = old["metadata"]["resourceVersion"]
    meta.pop("managedFields", None)
    if rtype.has_status:
        if "status" in old:
            merged["status"] = old["status"]
        else:
            merged.pop("status", None)
    return merged


def check_finalizers(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Raise Invalid when an update adds finalizers to an object being deleted."""
    if not old["metadata"].get("deletionTimestamp"):
        return
    added = set(new["metadata"].get("finalizers") or []) - set(
        old["metadata"].get("finalizers") or []
    )
    if added:
        listed = ", ".join(f'"{f}"' for f in sorted(added))
        raise invalid(
            rtype,
            old["metadata"]["name"],
            [
                (
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being "
                    f"deleted, found new finalizers []string{{{listed}}}",
                )
            ],
        )


def changes_generation(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether an update changes the spec (everything but metadata when there is no status
    subresource), which bumps metadata.generation."""
    if new["metadata"].get("deletionTimestamp") != old["metadata"].get("deletionTimestamp"):
        return False
    if rtype.has_status:
        return old.get("spec") != new.get("spec")
    return {k: v for k, v in old.items() if k != "metadata"} != {
        k: v for k, v in new.items() if k != "metadata"
    }


def next_state(stored: dict[str, Any]) -> dict[str, Any]:
    """A new state of a stored object whose top level and metadata map are its own, to change;
    every other value is shared with `stored` (stored states are never changed in place)."""
    result = dict(stored)
    result["metadata"] = dict(stored["metadata"])
    return result


def with_status_of(base: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """A new state of a stored object `base` whose status is that of `source` (none if `source`
    has none), sharing every other value but its top level and metadata map with `base`."""
    result = next_state(base)
    if "status" in source:
        result["status"] = source["status"]
    else:
        result.pop("status", None)
    return result
