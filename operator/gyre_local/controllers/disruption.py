"""The disruption controller: each PodDisruptionBudget's status from the pods it selects, as
kube-controller-manager's disruption controller computes it (and the eviction subresource
reads it)."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any

from gyre_local.clock import now_rfc3339, seconds_since
from gyre_local.controllers.objects import controller_of, is_deleting, pod_ready
from gyre_local.controllers.reconciler import Controller, Key, find
from gyre_local.store.selectors import object_selector_matches
from gyre_local.store.store import Store

POLICY_GROUP = "policy"
# How long an evicted pod counts as disrupted while it is not yet deleted (DeletionTimeout).
DISRUPTED_POD_TIMEOUT = 120.0
# The kinds whose scale a budget with a percentage or maxUnavailable counts on, and where.
_SCALED_CONTROLLERS = {
    ("apps", "ReplicaSet"): ("apps", "replicasets"),
    ("apps", "Deployment"): ("apps", "deployments"),
    ("apps", "StatefulSet"): ("apps", "statefulsets"),
    ("", "ReplicationController"): ("", "replicationcontrollers"),
}


class NoController(Exception):
    """A selected pod has no scalable controller, so the expected count cannot be known."""


def budgets_of(store: Store, pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The PodDisruptionBudgets of the pod's namespace that select it."""
    budgets, _ = store.list(POLICY_GROUP, "poddisruptionbudgets", pod["metadata"]["namespace"])
    labels = pod["metadata"].get("labels") or {}
    return [
        b for b in budgets if object_selector_matches((b.get("spec") or {}).get("selector"), labels)
    ]


def counts_as_healthy(pod: dict[str, Any], disrupted: dict[str, str]) -> bool:
    """Whether a selected pod counts towards a budget's currentHealthy: Ready, not being
    deleted, and not evicted a moment ago."""
    name = pod["metadata"]["name"]
    return pod_ready(pod) and not is_deleting(pod) and name not in disrupted


def resolve(value: int | str, total: int, *, round_up: bool) -> int:
    """An IntOrString count: the integer, or the percentage of total, rounded as asked."""
    if isinstance(value, int):
        return value
    share = int(str(value).rstrip("%")) * total / 100
    return math.ceil(share) if round_up else math.floor(share)


def budget_status(
    budget: dict[str, Any], pods: list[dict[str, Any]], expected_scale: int | None
) -> dict[str, Any]:
    """The status of a budget over the pods it selects; expected_scale is the summed scale of
    their controllers (needed only for maxUnavailable or a percentage minAvailable)."""
    spec = budget.get("spec") or {}
    previous = budget.get("status") or {}
    disrupted = {
        name: since
        for name, since in (previous.get("disruptedPods") or {}).items()
        if seconds_since(since) < DISRUPTED_POD_TIMEOUT
        and any(p["metadata"]["name"] == name and not is_deleting(p) for p in pods)
    }
    healthy = sum(1 for p in pods if counts_as_healthy(p, disrupted))
    if "maxUnavailable" in spec:
        expected = expected_scale or 0
        desired = max(0, expected - resolve(spec["maxUnavailable"], expected, round_up=True))
    elif isinstance(spec.get("minAvailable"), str):
        expected = expected_scale or 0
        desired = resolve(spec["minAvailable"], expected, round_up=True)
    else:
        expected = len(pods)
        desired = int(spec.get("minAvailable", 1))
    allowed = max(0, healthy - desired)
    return {
        "observedGeneration": budget["metadata"].get("generation", 1),
        "disruptedPods": disrupted or None,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [
            _allowed_condition(
                previous,
                "True" if allowed > 0 else "False",
                "SufficientPods" if allowed > 0 else "InsufficientPods",
                "",
            )
        ],
    }


def failed_status(budget: dict[str, Any], message: str) -> dict[str, Any]:
    """The fail-safe status of a budget whose expected count cannot be known: no disruption."""
    previous = budget.get("status") or {}
    return {
        **previous,
        "observedGeneration": budget["metadata"].get("generation", 1),
        "disruptionsAllowed": 0,
        "conditions": [_allowed_condition(previous, "False", "SyncFailed", message)],
    }


def _allowed_condition(
    previous: dict[str, Any], status: str, reason: str, message: str
) -> dict[str, Any]:
    old: dict[str, Any] = next(
        (c for c in previous.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), {}
    )
    changed = old.get("status") != status
    return {
        "type": "DisruptionAllowed",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_rfc3339() if changed else old.get("lastTransitionTime"),
    }


class DisruptionController(Controller):
    """Keeps every PodDisruptionBudget's status in line with the pods it selects."""

    resource = (POLICY_GROUP, "poddisruptionbudgets")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """Pods, mapped to the budgets that select them."""
        return [("", "pods", self._budget_keys)]

    def _budget_keys(self, pod: dict[str, Any]) -> list[Key]:
        return [
            (b["metadata"]["namespace"], b["metadata"]["name"]) for b in budgets_of(self.store, pod)
        ]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Write the budget's status; look again when an evicted pod stops counting."""
        budget = self.primary(namespace, name)
        if budget is None or is_deleting(budget):
            return None
        selector = (budget.get("spec") or {}).get("selector")
        pods, _ = self.store.list("", "pods", namespace)
        selected = [
            p for p in pods if object_selector_matches(selector, p["metadata"].get("labels"))
        ]
        try:
            status = budget_status(budget, selected, self._expected_scale(budget, selected))
        except NoController as error:
            status = failed_status(budget, str(error))
        status = {k: v for k, v in status.items() if v is not None}
        if status != (budget.get("status") or {}):
            updated = copy.deepcopy(budget)
            updated["status"] = status
            self.store.replace(
                POLICY_GROUP, "poddisruptionbudgets", namespace, name, updated, subresource="status"
            )
        return DISRUPTED_POD_TIMEOUT if status.get("disruptedPods") else None

    def _expected_scale(self, budget: dict[str, Any], pods: list[dict[str, Any]]) -> int | None:
        spec = budget.get("spec") or {}
        if "maxUnavailable" not in spec and not isinstance(spec.get("minAvailable"), str):
            return None
        scales: dict[str, int] = {}
        for pod in pods:
            uid, replicas = self._scale_of(pod)
            scales[uid] = replicas
        return sum(scales.values())

    def _scale_of(self, pod: dict[str, Any]) -> tuple[str, int]:
        """The uid and spec.replicas of the controller that scales a pod (a Deployment for the
        pods of its ReplicaSets)."""
        reference = controller_of(pod)
        namespace = pod["metadata"]["namespace"]
        while reference is not None:
            group = reference.get("apiVersion", "").rpartition("/")[0]
            location = _SCALED_CONTROLLERS.get((group, reference.get("kind", "")))
            owner = find(self.store, *location, namespace, reference["name"]) if location else None
            if owner is None:
                break
            parent = controller_of(owner)
            if parent is not None and parent.get("kind") == "Deployment":
                reference = parent
                continue
            return owner["metadata"]["uid"], int((owner.get("spec") or {}).get("replicas", 1))
        raise NoController(f'found no controllers for pod "{pod["metadata"]["name"]}"')
