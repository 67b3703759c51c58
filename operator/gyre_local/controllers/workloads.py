"""What the StatefulSet and DaemonSet controllers share: ControllerRevisions (apps/v1), the
template history they keep (one revision per distinct pod template, numbered, pruned to
revisionHistoryLimit), pods made from a template, and pod availability."""

from __future__ import annotations

import copy
from typing import Any

from gyre_local.controllers.deployments import template_hash
from gyre_local.controllers.objects import owned_by, owner_reference, pod_ready, ready_seconds
from gyre_local.store.patching import MERGE_PATCH
from gyre_local.store.store import ApiError, Store

REVISION_HASH_LABEL = "controller-revision-hash"


def revision_data(template: dict[str, Any]) -> dict[str, Any]:
    """What a revision records: a patch replacing the owner's pod template."""
    return {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}}


def revision_template(revision: dict[str, Any]) -> dict[str, Any]:
    """The pod template a revision records."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_number(revision: dict[str, Any]) -> int:
    return int(revision.get("revision") or 0)


def owner_template(owner: dict[str, Any]) -> dict[str, Any]:
    return dict((owner.get("spec") or {}).get("template") or {})


def availability_wait(pod: dict[str, Any], min_ready_seconds: float) -> float | None:
    """Seconds until a ready pod counts as available (0: it does), None when not ready."""
    if not pod_ready(pod):
        return None
    return max(0.0, min_ready_seconds - ready_seconds(pod))


def pod_from_template(
    owner: dict[str, Any], template: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    """A pod of an owner's template: its labels (and the given ones), annotations and spec,
    controlled by the owner (name left to the caller)."""
    template = copy.deepcopy(template)
    template_metadata = template.get("metadata") or {}
    metadata: dict[str, Any] = {
        "namespace": owner["metadata"]["namespace"],
        "labels": {**(template_metadata.get("labels") or {}), **labels},
        "ownerReferences": [owner_reference(owner)],
    }
    if template_metadata.get("annotations"):
        metadata["annotations"] = dict(template_metadata["annotations"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec") or {},
    }


def pod_revision(pod: dict[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL, ""))


class Revisions:
    """The ControllerRevisions of one owner (a StatefulSet or DaemonSet)."""

    def __init__(self, store: Store, owner: dict[str, Any]) -> None:
        self.store = store
        self.owner = owner
        namespace = owner["metadata"]["namespace"]
        items, _ = store.list("apps", "controllerrevisions", namespace)
        self.items = sorted((r for r in items if owned_by(r, owner)), key=revision_number)

    @property
    def update_hash(self) -> str:
        """The hash of the owner's current pod template."""
        return template_hash(owner_template(self.owner))

    @property
    def update_name(self) -> str:
        return f"{self.owner['metadata']['name']}-{self.update_hash}"

    def named(self, name: str) -> dict[str, Any] | None:
        return next((r for r in self.items if r["metadata"]["name"] == name), None)

    def ensure_update_revision(self) -> dict[str, Any]:
        """The revision of the current template, created (or renumbered, for a template
        rolled back to) as the newest."""
        newest = max((revision_number(r) for r in self.items), default=0)
        existing = self.named(self.update_name)
        if existing is not None:
            if revision_number(existing) == newest:
                return existing
            metadata = existing["metadata"]
            renumbered = self.store.patch(
                "apps",
                "controllerrevisions",
                metadata["namespace"],
                metadata["name"],
                {"revision": newest + 1},
                MERGE_PATCH,
            )
            self.items = [renumbered if r is existing else r for r in self.items]
            return renumbered
        template = owner_template(self.owner)
        revision = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": self.update_name,
                "namespace": self.owner["metadata"]["namespace"],
                "labels": {
                    **((template.get("metadata") or {}).get("labels") or {}),
                    REVISION_HASH_LABEL: self.update_hash,
                },
                "ownerReferences": [owner_reference(self.owner)],
            },
            "data": revision_data(template),
            "revision": newest + 1,
        }
        try:
            created = self.store.create(
                "apps", "controllerrevisions", self.owner["metadata"]["namespace"], revision
            )
        except ApiError as error:
            if error.code != 409:
                raise
            created = self.store.get(
                "apps", "controllerrevisions", self.owner["metadata"]["namespace"], self.update_name
            )
        self.items.append(created)
        return created

    def prune(self, live: set[str]) -> None:
        """Delete the oldest revisions beyond revisionHistoryLimit that no live pod and
        neither the current nor the update revision use."""
        limit = int((self.owner.get("spec") or {}).get("revisionHistoryLimit", 10))
        unused = [r for r in self.items if r["metadata"]["name"] not in live]
        for revision in unused[: max(0, len(unused) - limit)]:
            metadata = revision["metadata"]
            try:
                self.store.delete(
                    "apps", "controllerrevisions", metadata["namespace"], metadata["name"]
                )
            except ApiError as error:
                if error.code != 404:
                    raise
