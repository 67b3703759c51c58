"""The StatefulSet controller (apps/v1): pods `<name>-<ordinal>` with stable identities and
claims, created in order (OrderedReady) or together (Parallel), rolled from the highest
ordinal down."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from gyre_local.controllers.events import EventRecorder
from gyre_local.controllers.objects import is_deleting, owned_by, owner_reference, pod_terminal
from gyre_local.controllers.reconciler import Controller, owner_keys
from gyre_local.controllers.workloads import (
    REVISION_HASH_LABEL,
    Revisions,
    availability_wait,
    owner_template,
    pod_from_template,
    pod_revision,
    revision_template,
)
from gyre_local.store.store import ApiError, Store

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal_of(set_name: str, pod: dict[str, Any]) -> int | None:
    """The ordinal in a pod's name `<set>-<ordinal>`, if it has that form."""
    match = re.fullmatch(rf"{re.escape(set_name)}-(\d+)", pod["metadata"]["name"])
    return int(match.group(1)) if match else None


def claim_name(template: dict[str, Any], set_name: str, ordinal: int) -> str:
    """The claim of a volumeClaimTemplate for one pod: `<template>-<set>-<ordinal>`."""
    return f"{template['metadata']['name']}-{set_name}-{ordinal}"


def ordinals(statefulset: dict[str, Any]) -> range:
    """The ordinals the set wants: `spec.ordinals.start` onwards, `spec.replicas` of them."""
    spec = statefulset.get("spec") or {}
    start = int((spec.get("ordinals") or {}).get("start") or 0)
    return range(start, start + int(spec.get("replicas", 1)))


def stateful_pod(
    statefulset: dict[str, Any], template: dict[str, Any], revision: str, ordinal: int
) -> dict[str, Any]:
    """The pod of one ordinal: its identity labels, hostname and subdomain, and its claims
    mounted in place of the template's volumes of the same names."""
    metadata, spec = statefulset["metadata"], statefulset.get("spec") or {}
    name = f"{metadata['name']}-{ordinal}"
    labels = {
        POD_NAME_LABEL: name,
        POD_INDEX_LABEL: str(ordinal),
        REVISION_HASH_LABEL: revision,
    }
    pod = pod_from_template(statefulset, template, labels)
    pod["metadata"]["name"] = name
    pod_spec = pod["spec"]
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    claims = {
        t["metadata"]["name"]: claim_name(t, metadata["name"], ordinal)
        for t in spec.get("volumeClaimTemplates") or []
    }
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claims]
    volumes += [
        {"name": volume, "persistentVolumeClaim": {"claimName": claim}}
        for volume, claim in claims.items()
    ]
    if volumes:
        pod_spec["volumes"] = volumes
    return pod


def stateful_claim(
    statefulset: dict[str, Any], template: dict[str, Any], ordinal: int
) -> dict[str, Any]:
    """The claim of a volumeClaimTemplate for one ordinal, labelled with the set's selector and
    owned by the set when its persistentVolumeClaimRetentionPolicy deletes claims with it."""
    spec = statefulset.get("spec") or {}
    policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    template_metadata = template.get("metadata") or {}
    match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
    metadata: dict[str, Any] = {
        "name": claim_name(template, statefulset["metadata"]["name"], ordinal),
        "namespace": statefulset["metadata"]["namespace"],
        "labels": {**(template_metadata.get("labels") or {}), **match_labels},
        "annotations": dict(template_metadata.get("annotations") or {}),
    }
    if policy.get("whenDeleted") == "Delete":
        metadata["ownerReferences"] = [owner_reference(statefulset)]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


class StatefulSetController(Controller):
    """Keeps a StatefulSet's ordinals each backed by one pod of the right revision."""

    resource = ("apps", "statefulsets")

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.events = EventRecorder(store, "statefulset-controller")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """Pods, mapped to the StatefulSet that controls them."""
        return [("", "pods", owner_keys("StatefulSet"))]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """One step towards the wanted pods, then the set's status."""
        statefulset = self.primary(namespace, name)
        if statefulset is None or is_deleting(statefulset):
            return None
        revisions = Revisions(self.store, statefulset)
        update = revisions.ensure_update_revision()
        update_name = update["metadata"]["name"]
        current_name = (statefulset.get("status") or {}).get("currentRevision") or update_name
        current = revisions.named(current_name)
        items, _ = self.store.list("", "pods", namespace)
        pods = {
            ordinal: pod
            for pod in items
            if owned_by(pod, statefulset) and (ordinal := ordinal_of(name, pod)) is not None
        }
        self._step(statefulset, pods, update_name, current)
        items, _ = self.store.list("", "pods", namespace)
        live = [p for p in items if owned_by(p, statefulset)]
        revisions.prune({update_name, current_name, *(pod_revision(p) for p in live)})
        return self._write_status(statefulset, live, update_name, current_name)

    def _step(
        self,
        statefulset: dict[str, Any],
        pods: dict[int, dict[str, Any]],
        update_name: str,
        current: dict[str, Any] | None,
    ) -> None:
        """Replace failed pods, create missing ones, remove condemned ones, then roll one."""
        spec = statefulset.get("spec") or {}
        parallel = spec.get("podManagementPolicy") == "Parallel"
        wanted = ordinals(statefulset)
        # A pod that finished (failed, or exited under restartPolicy Never) is made again.
        for ordinal, pod in sorted(pods.items()):
            if pod_terminal(pod) and not is_deleting(pod):
                self._delete(statefulset, pod)
                del pods[ordinal]
        for ordinal in wanted:
            existing = pods.get(ordinal)
            if existing is None:
                pods[ordinal] = self._create(statefulset, ordinal, update_name, current)
                if not parallel:
                    return
            elif not parallel and (is_deleting(existing) or availability_wait(existing, 0) is None):
                return
        condemned = sorted((o for o in pods if o not in wanted), reverse=True)
        for ordinal in condemned:
            pod = pods[ordinal]
            if not is_deleting(pod):
                self._delete(statefulset, pod)
                self._release_claims(statefulset, ordinal)
            if not parallel:
                return
        if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
            self._roll(statefulset, pods, update_name)

    def _roll(
        self, statefulset: dict[str, Any], pods: dict[int, dict[str, Any]], update_name: str
    ) -> None:
        """Delete the highest pod of an old revision at or above the partition, once every
        pod is ready (it comes back at the update revision)."""
        partition = int(
            ((statefulset["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}).get(
                "partition"
            )
            or 0
        )
        if any(is_deleting(p) or availability_wait(p, 0) is None for p in pods.values()):
            return
        for ordinal in sorted(pods, reverse=True):
            if ordinal >= partition and pod_revision(pods[ordinal]) != update_name:
                self._delete(statefulset, pods[ordinal])
                return

    def _create(
        self,
        statefulset: dict[str, Any],
        ordinal: int,
        update_name: str,
        current: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Create one ordinal's claims (those missing) and pod; below a rolling update's
        partition the pod keeps the current revision."""
        spec = statefulset.get("spec") or {}
        partition = int(
            ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition") or 0
        )
        template, revision = owner_template(statefulset), update_name
        if current is not None and ordinal < partition:
            template, revision = revision_template(current), current["metadata"]["name"]
        pod = stateful_pod(statefulset, template, revision, ordinal)
        for claim_template in spec.get("volumeClaimTemplates") or []:
            self._ensure_claim(statefulset, claim_template, ordinal, pod["metadata"]["name"])
        created = self.store.create("", "pods", statefulset["metadata"]["namespace"], pod)
        self._record(statefulset, "create", "Pod", created["metadata"]["name"])
        return created

    def _ensure_claim(
        self,
        statefulset: dict[str, Any],
        template: dict[str, Any],
        ordinal: int,
        pod_name: str,
    ) -> None:
        claim = stateful_claim(statefulset, template, ordinal)
        try:
            self.store.create("", "persistentvolumeclaims", claim["metadata"]["namespace"], claim)
        except ApiError as error:
            if error.code != 409:
                raise
            return
        name = claim["metadata"]["name"]
        message = (
            f"create Claim {name} Pod {pod_name} in StatefulSet "
            f"{statefulset['metadata']['name']} success"
        )
        self.events.normal(statefulset, "SuccessfulCreate", message)

    def _release_claims(self, statefulset: dict[str, Any], ordinal: int) -> None:
        """A scaled-down ordinal's claims: kept (Retain, the default), or deleted when the
        set's persistentVolumeClaimRetentionPolicy says `whenScaled: Delete`."""
        spec = statefulset.get("spec") or {}
        policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        if policy.get("whenScaled") != "Delete":
            return
        for template in spec.get("volumeClaimTemplates") or []:
            name = claim_name(template, statefulset["metadata"]["name"], ordinal)
            try:
                self.store.delete(
                    "", "persistentvolumeclaims", statefulset["metadata"]["namespace"], name
                )
            except ApiError as error:
                if error.code != 404:
                    raise

    def _delete(self, statefulset: dict[str, Any], pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        try:
            self.store.delete("", "pods", metadata["namespace"], metadata["name"])
        except ApiError as error:
            if error.code != 404:
                raise
            return
        self._record(statefulset, "delete", "Pod", metadata["name"])

    def _record(self, statefulset: dict[str, Any], verb: str, kind: str, name: str) -> None:
        """The statefulset-controller's events: `<verb> Pod <name> in StatefulSet <set>
        successful`."""
        message = (
            f"{verb} {kind} {name} in StatefulSet {statefulset['metadata']['name']} successful"
        )
        self.events.normal(statefulset, f"Successful{verb.capitalize()}", message)

    def _write_status(
        self,
        statefulset: dict[str, Any],
        live: list[dict[str, Any]],
        update_name: str,
        current_name: str,
    ) -> float | None:
        """Write the counts and revisions; return when a ready pod becomes available."""
        spec = statefulset.get("spec") or {}
        active = [p for p in live if not is_deleting(p) and not pod_terminal(p)]
        min_ready = float(spec.get("minReadySeconds") or 0)
        waits = [availability_wait(p, min_ready) for p in active]
        ready = sum(1 for w in waits if w is not None)
        updated = sum(1 for p in active if pod_revision(p) == update_name)
        current_count = sum(1 for p in active if pod_revision(p) == current_name)
        rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
        if rolling and updated == len(active) == ready:
            current_name, current_count = update_name, updated
        status: dict[str, Any] = {
            "observedGeneration": statefulset["metadata"].get("generation", 1),
            "replicas": len(active),
            "readyReplicas": ready,
            "currentReplicas": current_count,
            "updatedReplicas": updated,
            "availableReplicas": sum(1 for w in waits if w == 0),
            "currentRevision": current_name,
            "updateRevision": update_name,
            "collisionCount": 0,
        }
        for counter in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if status[counter] == 0:
                del status[counter]
        previous = statefulset.get("status") or {}
        if status != previous:
            metadata = statefulset["metadata"]
            self.store.replace(
                "apps",
                "statefulsets",
                metadata["namespace"],
                metadata["name"],
                {**statefulset, "status": status},
                subresource="status",
            )
        pending = [w for w in waits if w]
        return min(pending) if pending else None
