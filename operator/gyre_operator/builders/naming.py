"""Deterministic names and labels of the objects Gyre creates."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gyre_operator.api import API_VERSION

MAX_LABELLED_NAME = 63  # a Job's name is also a label value (job-name): at most 63 characters
MANAGED_BY = {"app.kubernetes.io/managed-by": "gyre"}
COMPONENT_LABEL = "app.kubernetes.io/component"
OWNER_KIND_LABEL = "gyre.dev/owner-kind"


def short_hash(*parts: Any, length: int = 8) -> str:
    """A stable hex digest of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def child_name(parent: str, suffix: str) -> str:
    """`<parent>-<suffix>`, shortened with a hash of the parent when it would exceed 63 chars."""
    name = f"{parent}-{suffix}"
    if len(name) <= MAX_LABELLED_NAME:
        return name
    keep = MAX_LABELLED_NAME - len(suffix) - 10
    return f"{parent[:keep].rstrip('-.')}-{short_hash(parent)}-{suffix}"


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    """A controller ownerReference to a Gyre object: its children go when it goes."""
    return {
        "apiVersion": obj.get("apiVersion", API_VERSION),
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_labels(owner: dict[str, Any], component: str) -> dict[str, str]:
    """Labels on every child: managed by Gyre, which part, which kind of owner."""
    return {**MANAGED_BY, COMPONENT_LABEL: component, OWNER_KIND_LABEL: owner["kind"]}
