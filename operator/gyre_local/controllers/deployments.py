"""The Deployment and ReplicaSet controllers (apps/v1)."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable
from typing import Any

from gyre_local.clock import now_rfc3339, seconds_since
from gyre_local.controllers.events import EventRecorder, pod_created, pod_deleted
from gyre_local.controllers.objects import (
    is_deleting,
    owned_by,
    owner_reference,
    pod_ready,
    pod_terminal,
    ready_seconds,
)
from gyre_local.controllers.reconciler import Controller, owner_keys
from gyre_local.names import SAFE_ALPHABET, random_suffix
from gyre_local.store.patching import MERGE_PATCH
from gyre_local.store.store import ApiError, Store

REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"


def template_hash(template: dict[str, Any]) -> str:
    """A stable hash of a pod template, encoded like Kubernetes' pod-template-hash."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    value = 0x811C9DC5  # FNV-1a, 32 bits, as Kubernetes uses
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(SAFE_ALPHABET[ord(char) % len(SAFE_ALPHABET)] for char in str(value))


def scaled_value(value: int | str | None, total: int, *, round_up: bool, default: str) -> int:
    """An IntOrString (a count or a percentage of total) as a count."""
    raw = default if value is None else value
    if isinstance(raw, int):
        return raw
    if raw.endswith("%"):
        exact = int(raw[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(raw)


def rolling_bounds(deployment: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas."""
    spec = deployment.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, replicas
    rolling = strategy.get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
    unavailable = scaled_value(
        rolling.get("maxUnavailable"), replicas, round_up=False, default="25%"
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _replicas(obj: dict[str, Any]) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


def _status_count(obj: dict[str, Any], field: str) -> int:
    return int((obj.get("status") or {}).get(field, 0))


def _revision(rs: dict[str, Any]) -> int:
    return int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))


def _set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    status: str,
    reason: str,
    message: str,
    *,
    touched: bool = False,
) -> list[dict[str, Any]]:
    """Conditions with one updated; transition time kept while the status holds, update time
    kept while reason and message hold and the condition is not `touched`."""
    now = now_rfc3339()
    previous = next((c for c in conditions if c.get("type") == kind), None)
    condition = {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }
    if previous is not None and previous.get("status") == status:
        condition["lastTransitionTime"] = previous.get("lastTransitionTime", now)
        if (previous.get("reason"), previous.get("message")) == (reason, message) and not touched:
            condition["lastUpdateTime"] = previous.get("lastUpdateTime", now)
    return [condition if c.get("type") == kind else c for c in conditions] + (
        [] if previous is not None else [condition]
    )


class ReplicaSetController(Controller):
    """Keeps the number of a ReplicaSet's active pods at spec.replicas."""

    resource = ("apps", "replicasets")

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.events = EventRecorder(store, "replicaset-controller")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """Pods, mapped to the ReplicaSet that controls them."""
        return [("", "pods", owner_keys("ReplicaSet"))]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Create or delete pods, then report the ReplicaSet's status."""
        rs = self.primary(namespace, name)
        if rs is None or is_deleting(rs):
            return None
        items, _ = self.store.list("", "pods", namespace)
        active = [
            p for p in items if owned_by(p, rs) and not pod_terminal(p) and not is_deleting(p)
        ]
        wanted = _replicas(rs)
        if len(active) < wanted:
            active += [self._create_pod(rs) for _ in range(wanted - len(active))]
        elif len(active) > wanted:
            newest_first = sorted(active, key=_created, reverse=True)
            doomed = sorted(newest_first, key=_deletion_rank)[: len(active) - wanted]
            for pod in doomed:
                self._delete(rs, pod)
            active = [p for p in active if p not in doomed]
        return self._write_status(rs, active)

    def _create_pod(self, rs: dict[str, Any]) -> dict[str, Any]:
        metadata = rs["metadata"]
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        template_metadata = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{metadata['name']}-{random_suffix()}",
                "generateName": f"{metadata['name']}-",
                "namespace": metadata["namespace"],
                "labels": dict(template_metadata.get("labels") or {}),
                "annotations": dict(template_metadata.get("annotations") or {}),
                "ownerReferences": [owner_reference(rs)],
            },
            "spec": template.get("spec") or {},
        }
        created = self.store.create("", "pods", metadata["namespace"], pod)
        pod_created(self.events, rs, created)
        return created

    def _delete(self, rs: dict[str, Any], pod: dict[str, Any]) -> None:
        try:
            self.store.delete("", "pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        except ApiError as error:
            if error.code != 404:
                raise
            return
        pod_deleted(self.events, rs, pod)

    def _write_status(self, rs: dict[str, Any], active: list[dict[str, Any]]) -> float | None:
        min_ready = float((rs.get("spec") or {}).get("minReadySeconds", 0))
        ready = [p for p in active if pod_ready(p)]
        waits = [min_ready - ready_seconds(p) for p in ready]
        available = sum(1 for wait in waits if wait <= 0)
        template_labels = (
            ((rs.get("spec") or {}).get("template") or {}).get("metadata") or {}
        ).get("labels") or {}
        fully_labeled = sum(
            1
            for p in active
            if template_labels.items() <= ((p["metadata"].get("labels") or {}).items())
        )
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": fully_labeled,
            "readyReplicas": len(ready),
            "availableReplicas": available,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        previous = rs.get("status") or {}
        if any(previous.get(k) != v for k, v in status.items()):
            updated = copy.deepcopy(rs)
            updated["status"] = {**previous, **status}
            metadata = rs["metadata"]
            self.store.replace(
                "apps",
                "replicasets",
                metadata["namespace"],
                metadata["name"],
                updated,
                subresource="status",
            )
        pending = [wait for wait in waits if wait > 0]
        return min(pending) if pending else None


def _created(pod: dict[str, Any]) -> str:
    return str(pod["metadata"].get("creationTimestamp", ""))


def _deletion_rank(pod: dict[str, Any]) -> tuple[int, int]:
    """Pods to delete first: not running, then not ready (ties: keep the given order)."""
    running = (pod.get("status") or {}).get("phase") == "Running"
    return (1 if running else 0, 1 if pod_ready(pod) else 0)


class DeploymentController(Controller):
    """Rolls a Deployment's pod template out through ReplicaSets."""

    resource = ("apps", "deployments")

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.events = EventRecorder(store, "deployment-controller")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """ReplicaSets, mapped to the Deployment that controls them."""
        return [("apps", "replicasets", owner_keys("Deployment"))]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Create, scale and prune ReplicaSets by the strategy, then report status."""
        deployment = self.primary(namespace, name)
        if deployment is None or is_deleting(deployment):
            return None
        items, _ = self.store.list("apps", "replicasets", namespace)
        owned = [rs for rs in items if owned_by(rs, deployment)]
        template = (deployment.get("spec") or {}).get("template") or {}
        wanted_hash = template_hash(template)
        new_rs = next((rs for rs in owned if _pod_template_hash(rs) == wanted_hash), None)
        old = sorted((rs for rs in owned if rs is not new_rs), key=_revision)
        if not (deployment.get("spec") or {}).get("paused"):
            new_rs = self._ensure_new(deployment, new_rs, old, wanted_hash)
            if (deployment["spec"].get("strategy") or {}).get("type") == "Recreate":
                self._recreate(deployment, new_rs, old)
            else:
                self._roll(deployment, new_rs, old)
            self._prune(deployment, old)
        return self._write_status(deployment, new_rs, old)

    def _ensure_new(
        self,
        deployment: dict[str, Any],
        new_rs: dict[str, Any] | None,
        old: list[dict[str, Any]],
        wanted_hash: str,
    ) -> dict[str, Any]:
        """The ReplicaSet of the current template, created or re-labelled as the newest revision."""
        newest_old = max([_revision(rs) for rs in old], default=0)
        revision = str(newest_old + 1)
        if new_rs is not None:
            if _revision(new_rs) > newest_old:
                return new_rs
            # A rollback to an old template: that ReplicaSet becomes the newest revision.
            return self._patch_rs(new_rs, {"metadata": {"annotations": {REVISION: revision}}})
        metadata = deployment["metadata"]
        spec = deployment.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = wanted_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = wanted_hash
        surge, _ = rolling_bounds(deployment)
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{metadata['name']}-{wanted_hash}",
                "namespace": metadata["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    REVISION: revision,
                    DESIRED_REPLICAS: str(_replicas(deployment)),
                    MAX_REPLICAS: str(_replicas(deployment) + surge),
                },
                "ownerReferences": [owner_reference(deployment)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        return self.store.create("apps", "replicasets", metadata["namespace"], rs)

    def _recreate(
        self, deployment: dict[str, Any], new_rs: dict[str, Any], old: list[dict[str, Any]]
    ) -> None:
        """Scale every old ReplicaSet to 0, and the new one up once their pods are gone."""
        for rs in old:
            if _replicas(rs) > 0:
                self._scale(deployment, rs, 0)
        if any(_status_count(rs, "replicas") > 0 or _replicas(rs) > 0 for rs in old):
            return
        self._scale(deployment, new_rs, _replicas(deployment))

    def _roll(
        self, deployment: dict[str, Any], new_rs: dict[str, Any], old: list[dict[str, Any]]
    ) -> None:
        """One rolling-update step bounded by maxSurge and maxUnavailable."""
        wanted = _replicas(deployment)
        surge, unavailable = rolling_bounds(deployment)
        current = _replicas(new_rs)
        if current > wanted:
            self._scale(deployment, new_rs, wanted)
        elif current < wanted:
            total = sum(_replicas(rs) for rs in [new_rs, *old])
            room = min(wanted + surge - total, wanted - current)
            if room > 0:
                self._scale(deployment, new_rs, current + room)
        if not any(_replicas(rs) for rs in old):
            return
        all_rs = [new_rs, *old]
        minimum = wanted - unavailable
        new_unavailable = _replicas(new_rs) - _status_count(new_rs, "availableReplicas")
        budget = sum(_replicas(rs) for rs in all_rs) - minimum - new_unavailable
        # Unhealthy old replicas go first: removing them costs no availability.
        for rs in old:
            if budget <= 0:
                return
            unhealthy = _replicas(rs) - _status_count(rs, "availableReplicas")
            cut = min(max(unhealthy, 0), budget)
            if cut:
                self._scale(deployment, rs, _replicas(rs) - cut)
                budget -= cut
        available = sum(_status_count(rs, "availableReplicas") for rs in all_rs)
        budget = available - minimum
        for rs in old:
            if budget <= 0:
                return
            cut = min(_replicas(rs), budget)
            if cut:
                self._scale(deployment, rs, _replicas(rs) - cut)
                budget -= cut

    def _scale(self, deployment: dict[str, Any], rs: dict[str, Any], replicas: int) -> None:
        surge, _ = rolling_bounds(deployment)
        annotations = {
            DESIRED_REPLICAS: str(_replicas(deployment)),
            MAX_REPLICAS: str(_replicas(deployment) + surge),
        }
        before = _replicas(rs)
        updated = self._patch_rs(
            rs, {"metadata": {"annotations": annotations}, "spec": {"replicas": replicas}}
        )
        rs.clear()
        rs.update(updated)
        if replicas != before:
            direction = "up" if replicas > before else "down"
            name = rs["metadata"]["name"]
            self.events.normal(
                deployment,
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {name} from {before} to {replicas}",
            )

    def _patch_rs(self, rs: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        metadata = rs["metadata"]
        return self.store.patch(
            "apps", "replicasets", metadata["namespace"], metadata["name"], patch, MERGE_PATCH
        )

    def _prune(self, deployment: dict[str, Any], old: list[dict[str, Any]]) -> None:
        """Delete drained old ReplicaSets beyond revisionHistoryLimit, oldest first."""
        limit = int((deployment.get("spec") or {}).get("revisionHistoryLimit", 10))
        drained = [rs for rs in old if _replicas(rs) == 0 and _status_count(rs, "replicas") == 0]
        for rs in drained[: max(0, len(drained) - limit)]:
            metadata = rs["metadata"]
            try:
                self.store.delete("apps", "replicasets", metadata["namespace"], metadata["name"])
            except ApiError as error:
                if error.code != 404:
                    raise

    def _write_status(
        self,
        deployment: dict[str, Any],
        new_rs: dict[str, Any] | None,
        old: list[dict[str, Any]],
    ) -> float | None:
        """Write the Deployment's status; return when to check the progress deadline again."""
        all_rs = [rs for rs in [new_rs, *old] if rs is not None]
        wanted = _replicas(deployment)
        _, unavailable = rolling_bounds(deployment)
        available = sum(_status_count(rs, "availableReplicas") for rs in all_rs)
        updated = _status_count(new_rs, "replicas") if new_rs else 0
        replicas = sum(_status_count(rs, "replicas") for rs in all_rs)
        previous = deployment.get("status") or {}
        status: dict[str, Any] = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": sum(_status_count(rs, "readyReplicas") for rs in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(0, sum(_replicas(rs) for rs in all_rs) - available),
        }
        conditions = list(previous.get("conditions") or [])
        if available >= wanted - unavailable:
            conditions = _set_condition(
                conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            conditions = _set_condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        complete = (
            new_rs is not None
            and updated == wanted
            and replicas == wanted
            and available == wanted
            and _replicas(new_rs) == wanted
        )
        progressed = any(previous.get(k, 0) != v for k, v in status.items())
        conditions, recheck = _progressing(deployment, conditions, new_rs, complete, progressed)
        # Kubernetes lists Available before Progressing.
        conditions.sort(key=lambda c: {"Available": 0, "Progressing": 1}.get(c["type"], 2))
        status["conditions"] = conditions
        for counter in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
            if status[counter] == 0:
                del status[counter]
        if status["unavailableReplicas"] == 0:
            del status["unavailableReplicas"]
        metadata = deployment["metadata"]
        if new_rs is not None:
            revision = str(_revision(new_rs))
            if (metadata.get("annotations") or {}).get(REVISION) != revision:
                patch = {"metadata": {"annotations": {REVISION: revision}}}
                deployment = self.store.patch(
                    "apps",
                    "deployments",
                    metadata["namespace"],
                    metadata["name"],
                    patch,
                    MERGE_PATCH,
                )
        if status != previous:
            body = copy.deepcopy(deployment)
            body["status"] = status
            self.store.replace(
                "apps",
                "deployments",
                metadata["namespace"],
                metadata["name"],
                body,
                subresource="status",
            )
        return recheck


def _progressing(
    deployment: dict[str, Any],
    conditions: list[dict[str, Any]],
    new_rs: dict[str, Any] | None,
    complete: bool,
    progressed: bool,
) -> tuple[list[dict[str, Any]], float | None]:
    """The Progressing condition, including progressDeadlineSeconds, and when to recheck it."""
    spec = deployment.get("spec") or {}
    rs_name = new_rs["metadata"]["name"] if new_rs else ""
    if spec.get("paused"):
        reason = ("Unknown", "DeploymentPaused", "Deployment is paused")
        return _set_condition(conditions, "Progressing", *reason), None
    if complete:
        message = f'ReplicaSet "{rs_name}" has successfully progressed.'
        return _set_condition(
            conditions, "Progressing", "True", "NewReplicaSetAvailable", message
        ), None
    previous = next((c for c in conditions if c.get("type") == "Progressing"), None)
    if (
        previous is not None
        and previous.get("reason") == "ProgressDeadlineExceeded"
        and not progressed
    ):
        return conditions, None
    message = f'ReplicaSet "{rs_name}" is progressing.'
    conditions = _set_condition(
        conditions, "Progressing", "True", "ReplicaSetUpdated", message, touched=progressed
    )
    current = next(c for c in conditions if c.get("type") == "Progressing")
    remaining = float(spec.get("progressDeadlineSeconds", 600)) - seconds_since(
        current["lastUpdateTime"]
    )
    if remaining > 0:
        return conditions, remaining
    message = f'ReplicaSet "{rs_name}" has timed out progressing.'
    return _set_condition(
        conditions, "Progressing", "False", "ProgressDeadlineExceeded", message
    ), None


def _pod_template_hash(rs: dict[str, Any]) -> str:
    """The hash of a ReplicaSet's template without its pod-template-hash label."""
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return template_hash(template)
