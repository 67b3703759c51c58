"""What controllers read from and write into objects: owner references, pod state, names."""

from __future__ import annotations

from typing import Any

from gyre_local.clock import seconds_since


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ownerReference marked controller: true, if any."""
    for reference in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return dict(reference)
    return None


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    """Whether obj's controller reference points at owner (by uid)."""
    reference = controller_of(obj)
    return reference is not None and reference.get("uid") == owner["metadata"]["uid"]


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """A controller ownerReference to owner, blocking its foreground deletion."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_reference(obj: dict[str, Any]) -> dict[str, Any]:
    """An ObjectReference to a stored object, at its current resourceVersion (as a CronJob's
    status.active and a PersistentVolume's claimRef hold them)."""
    metadata = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "namespace": metadata["namespace"],
        "name": metadata["name"],
        "uid": metadata["uid"],
        "resourceVersion": metadata["resourceVersion"],
    }


def is_deleting(obj: dict[str, Any]) -> bool:
    """Whether the object has a deletionTimestamp."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def pod_ready(pod: dict[str, Any]) -> bool:
    """Whether a pod's Ready condition is True."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def pod_terminal(pod: dict[str, Any]) -> bool:
    """Whether a pod reached Succeeded or Failed."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def ready_seconds(pod: dict[str, Any]) -> float:
    """How long a pod has been Ready (0 when it is not)."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            since = condition.get("lastTransitionTime")
            return seconds_since(since) if since else 0.0
    return 0.0
