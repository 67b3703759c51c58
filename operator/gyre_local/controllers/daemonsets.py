"""The DaemonSet controller (apps/v1): one pod per Node the template may run on, rolled to a
new template within maxUnavailable / maxSurge."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gyre_local.controllers.deployments import scaled_value
from gyre_local.controllers.events import EventRecorder, pod_created, pod_deleted
from gyre_local.controllers.objects import is_deleting, owned_by, pod_terminal
from gyre_local.controllers.reconciler import Controller, Key, owner_keys
from gyre_local.controllers.workloads import (
    REVISION_HASH_LABEL,
    Revisions,
    availability_wait,
    owner_template,
    pod_from_template,
    pod_revision,
)
from gyre_local.names import random_suffix
from gyre_local.store.selectors import expression_holds
from gyre_local.store.store import ApiError, Store

TEMPLATE_GENERATION_LABEL = "pod-template-generation"
# The tolerations the DaemonSet controller gives every daemon pod (AddOrUpdateDaemonPodTolerations).
DAEMON_TOLERATIONS: tuple[dict[str, Any], ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
_HOST_NETWORK_TOLERATION = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    """Whether a taint is tolerated (ToleratesTaint)."""
    for toleration in tolerations:
        effect = toleration.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        if toleration.get("operator", "Equal") == "Exists":
            if not toleration.get("key") or toleration.get("key") == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (
            taint.get("value") or ""
        ):
            return True
    return False


def daemon_tolerations(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A template's tolerations with the daemon ones it lacks."""
    tolerations = list(pod_spec.get("tolerations") or [])
    extra = [
        *DAEMON_TOLERATIONS,
        *([_HOST_NETWORK_TOLERATION] if pod_spec.get("hostNetwork") else []),
    ]
    return tolerations + [t for t in extra if t not in tolerations]


def affinity_allows(pod_spec: dict[str, Any], node: dict[str, Any]) -> bool:
    """Whether the template's required node affinity admits a node: some term whose every
    label expression and field (metadata.name) requirement holds (an empty term matches no
    node)."""
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return True
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    return any(
        (term.get("matchExpressions") or term.get("matchFields"))
        and all(expression_holds(r, labels) for r in term.get("matchExpressions") or [])
        and all(expression_holds(r, fields) for r in term.get("matchFields") or [])
        for term in required.get("nodeSelectorTerms") or []
    )


def should_run(pod_spec: dict[str, Any], node: dict[str, Any]) -> bool:
    """Whether a daemon pod belongs on a node: its nodeSelector matches the node's labels, its
    required node affinity admits the node, and every NoSchedule / NoExecute taint is tolerated
    (a cordoned node's unschedulable flag is tolerated by every daemon pod)."""
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    if not affinity_allows(pod_spec, node):
        return False
    tolerations = daemon_tolerations(pod_spec)
    taints = (node.get("spec") or {}).get("taints") or []
    return all(
        tolerates(tolerations, taint)
        for taint in taints
        if taint.get("effect") in ("NoSchedule", "NoExecute")
    )


def pinned_node(pod: dict[str, Any]) -> str:
    """The node a daemon pod is for: its nodeName, else its node affinity's name."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return str(field["values"][0])
    return ""


def daemon_pod(daemonset: dict[str, Any], revision_hash: str, node: str) -> dict[str, Any]:
    """A daemon pod for one node: the template, its revision labels, the daemon tolerations,
    and a node affinity to that node (the scheduler binds it there)."""
    metadata = daemonset["metadata"]
    labels = {
        REVISION_HASH_LABEL: revision_hash,
        TEMPLATE_GENERATION_LABEL: str(metadata.get("generation", 1)),
    }
    pod = pod_from_template(daemonset, owner_template(daemonset), labels)
    pod["metadata"]["name"] = f"{metadata['name']}-{random_suffix()}"
    pod["metadata"]["generateName"] = f"{metadata['name']}-"
    spec = pod["spec"]
    spec["tolerations"] = daemon_tolerations(spec)
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    affinity = spec.setdefault("affinity", {})
    affinity["nodeAffinity"] = {
        **(affinity.get("nodeAffinity") or {}),
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]},
    }
    return pod


def duplicates(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods of a node beyond the oldest of each revision (a surge keeps one old and one
    new pod side by side)."""
    seen: set[str] = set()
    extra = []
    for pod in pods:
        if pod_revision(pod) in seen:
            extra.append(pod)
        seen.add(pod_revision(pod))
    return extra


def rolling_limits(daemonset: dict[str, Any], desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) of a RollingUpdate against the desired count (surge rounded
    up, unavailability down; both 0 means one unavailable)."""
    rolling = ((daemonset.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge"), desired, round_up=True, default="0")
    unavailable = scaled_value(rolling.get("maxUnavailable"), desired, round_up=False, default="1")
    return surge, unavailable if surge or unavailable else 1


class DaemonSetController(Controller):
    """Keeps one pod of a DaemonSet on each node it should run on."""

    resource = ("apps", "daemonsets")

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.events = EventRecorder(store, "daemonset-controller")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """Pods, mapped to their DaemonSet; Nodes, to every DaemonSet."""
        return [("", "pods", owner_keys("DaemonSet")), ("", "nodes", self._every_daemonset)]

    def _every_daemonset(self, _node: dict[str, Any]) -> list[Key]:
        items, _ = self.store.list("apps", "daemonsets")
        return [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in items]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Place and roll the daemon pods, then write the status."""
        daemonset = self.primary(namespace, name)
        if daemonset is None or is_deleting(daemonset):
            return None
        revisions = Revisions(self.store, daemonset)
        revisions.ensure_update_revision()
        update_hash = revisions.update_hash
        nodes, _ = self.store.list("", "nodes")
        pod_spec = owner_template(daemonset).get("spec") or {}
        wanted = {n["metadata"]["name"] for n in nodes if should_run(pod_spec, n)}
        by_node = self._pods_by_node(daemonset)
        for node, pods in by_node.items():
            for pod in pods if node not in wanted else duplicates(pods):
                self._delete(daemonset, pod)
        for node in sorted(wanted - set(by_node)):
            self._create(daemonset, update_hash, node)
        by_node = self._pods_by_node(daemonset)
        strategy = (daemonset.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type") != "OnDelete":
            placed = {n: p for n, p in by_node.items() if n in wanted}
            self._roll(daemonset, placed, update_hash, len(wanted))
            by_node = self._pods_by_node(daemonset)
        live = {pod_revision(p) for pods in by_node.values() for p in pods}
        revisions.prune({revisions.update_name, *(f"{name}-{h}" for h in live)})
        return self._write_status(daemonset, by_node, wanted, update_hash)

    def _pods_by_node(self, daemonset: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """The DaemonSet's live pods per node, oldest first; finished ones are deleted (the
        controller makes them again)."""
        items, _ = self.store.list("", "pods", daemonset["metadata"]["namespace"])
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in sorted(items, key=lambda p: p["metadata"].get("creationTimestamp", "")):
            if not owned_by(pod, daemonset) or is_deleting(pod):
                continue
            if pod_terminal(pod):
                self._delete(daemonset, pod)
                continue
            by_node.setdefault(pinned_node(pod), []).append(pod)
        return by_node

    def _roll(
        self,
        daemonset: dict[str, Any],
        by_node: dict[str, list[dict[str, Any]]],
        update_hash: str,
        desired: int,
    ) -> None:
        """One RollingUpdate step: with maxSurge, a new pod beside each old one and the old
        one deleted once the new one is available; otherwise old pods deleted (then made
        again) while no more than maxUnavailable nodes lack an available pod."""
        surge, max_unavailable = rolling_limits(daemonset, desired)
        min_ready = float((daemonset.get("spec") or {}).get("minReadySeconds") or 0)

        def available(pod: dict[str, Any]) -> bool:
            return availability_wait(pod, min_ready) == 0

        if surge:
            surged = sum(1 for pods in by_node.values() if len(pods) > 1)
            for node, pods in sorted(by_node.items()):
                new = [p for p in pods if pod_revision(p) == update_hash]
                old = [p for p in pods if pod_revision(p) != update_hash]
                if old and new and available(new[0]):
                    for pod in old:
                        self._delete(daemonset, pod)
                elif old and not new and surged < surge:
                    self._create(daemonset, update_hash, node)
                    surged += 1
            return
        unavailable = desired - sum(
            1 for pods in by_node.values() if any(available(p) for p in pods)
        )
        for pods in [by_node[n] for n in sorted(by_node)]:
            old = [p for p in pods if pod_revision(p) != update_hash]
            if not old:
                continue
            already_down = not any(available(p) for p in pods)
            if not already_down and unavailable >= max_unavailable:
                continue
            for pod in old:
                self._delete(daemonset, pod)
            unavailable += 0 if already_down else 1

    def _create(self, daemonset: dict[str, Any], update_hash: str, node: str) -> None:
        pod = daemon_pod(daemonset, update_hash, node)
        created = self.store.create("", "pods", daemonset["metadata"]["namespace"], pod)
        pod_created(self.events, daemonset, created)

    def _delete(self, daemonset: dict[str, Any], pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        try:
            self.store.delete("", "pods", metadata["namespace"], metadata["name"])
        except ApiError as error:
            if error.code != 404:
                raise
            return
        pod_deleted(self.events, daemonset, pod)

    def _write_status(
        self,
        daemonset: dict[str, Any],
        by_node: dict[str, list[dict[str, Any]]],
        wanted: set[str],
        update_hash: str,
    ) -> float | None:
        """Write the per-node counts; return when a ready pod becomes available."""
        min_ready = float((daemonset.get("spec") or {}).get("minReadySeconds") or 0)
        scheduled = {n: p for n, p in by_node.items() if n in wanted and p}
        waits = {
            n: [availability_wait(p, min_ready) for p in pods] for n, pods in scheduled.items()
        }
        available = sum(1 for w in waits.values() if 0 in w)
        status: dict[str, Any] = {
            "currentNumberScheduled": len(scheduled),
            "numberMisscheduled": sum(1 for n, p in by_node.items() if n not in wanted and p),
            "desiredNumberScheduled": len(wanted),
            "numberReady": sum(1 for w in waits.values() if any(x is not None for x in w)),
            "observedGeneration": daemonset["metadata"].get("generation", 1),
            "updatedNumberScheduled": sum(
                1
                for pods in scheduled.values()
                if any(pod_revision(p) == update_hash for p in pods)
            ),
            "numberAvailable": available,
            "numberUnavailable": len(wanted) - available,
        }
        for counter in ("updatedNumberScheduled", "numberAvailable", "numberUnavailable"):
            if status[counter] == 0:
                del status[counter]
        if status != (daemonset.get("status") or {}):
            metadata = daemonset["metadata"]
            self.store.replace(
                "apps",
                "daemonsets",
                metadata["namespace"],
                metadata["name"],
                {**daemonset, "status": status},
                subresource="status",
            )
        pending = [x for w in waits.values() for x in w if x]
        return min(pending) if pending else None
