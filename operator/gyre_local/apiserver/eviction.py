"""The eviction subresource of pods (policy/v1 Eviction), as kube-apiserver's eviction REST
handler answers it: a pod is deleted only if the PodDisruptionBudget selecting it allows a
disruption, which the eviction then uses up (`kubectl drain` evicts so)."""

from __future__ import annotations

import copy
from typing import Any

from gyre_local.clock import now_rfc3339
from gyre_local.controllers.disruption import POLICY_GROUP, budgets_of
from gyre_local.controllers.objects import is_deleting, pod_ready
from gyre_local.store.builtins import ResourceType
from gyre_local.store.store import ApiError, Store, bad_request

SUBRESOURCE = "eviction"
SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
# kube-apiserver refuses to track more evicted-but-not-yet-deleted pods than this per budget.
_MAX_DISRUPTED_PODS = 2000


def handles(rtype: ResourceType, subresource: str | None) -> bool:
    """Whether a request is for a pod's eviction subresource."""
    return (rtype.group, rtype.kind, subresource) == ("", "Pod", SUBRESOURCE)


def evict(
    store: Store, namespace: str, name: str, eviction: Any, *, dry_run: bool
) -> dict[str, Any]:
    """Evict a pod: delete it if no budget forbids it, using up one allowed disruption of the
    budget that selects it; the Status to answer 201 with. A refusal raises the ApiError a
    real server answers (429 while the budget allows no disruption)."""
    if not isinstance(eviction, dict):
        raise bad_request("the body of the request must be a policy/v1 Eviction")
    given = (eviction.get("metadata") or {}).get("name")
    if given and given != name:
        raise bad_request("name in URL does not match name in Eviction object")
    options = eviction.get("deleteOptions") or {}
    dry_run = dry_run or "All" in (options.get("dryRun") or [])
    pod = store.get("", "pods", namespace, name)
    if not _budget_applies(pod):
        return _delete(store, pod, options, dry_run)
    budgets = budgets_of(store, pod)
    if len(budgets) > 1:
        raise ApiError(
            500,
            "InternalError",
            "This pod has more than one PodDisruptionBudget, which the eviction subresource "
            "does not support.",
        )
    if budgets:
        _use_disruption(store, budgets[0], pod, dry_run)
    return _delete(store, pod, options, dry_run)


def _budget_applies(pod: dict[str, Any]) -> bool:
    """Whether a budget guards the pod at all: not for finished, pending or deleting pods."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed", "Pending") and not is_deleting(pod)


def _use_disruption(
    store: Store, budget: dict[str, Any], pod: dict[str, Any], dry_run: bool
) -> None:
    """Check the budget allows evicting the pod and record the disruption, or raise."""
    spec, status = budget.get("spec") or {}, budget.get("status") or {}
    metadata = budget["metadata"]
    if status.get("observedGeneration", 0) < metadata.get("generation", 1):
        raise _too_many_requests(
            f"The disruption budget {metadata['name']} is still being processed by the server."
        )
    healthy, desired = status.get("currentHealthy", 0), status.get("desiredHealthy", 0)
    if not pod_ready(pod) and (
        spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow" or 0 < desired <= healthy
    ):
        return
    allowed = status.get("disruptionsAllowed", 0)
    disrupted = dict(status.get("disruptedPods") or {})
    if allowed < 0:
        raise ApiError(403, "Forbidden", "pdb disruptions allowed is negative")
    if len(disrupted) > _MAX_DISRUPTED_PODS:
        raise ApiError(
            403,
            "Forbidden",
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        )
    if allowed == 0:
        raise _too_many_requests(
            f"The disruption budget {metadata['name']} needs {desired} healthy pods and has "
            f"{healthy} currently"
        )
    if dry_run:
        return
    disrupted[pod["metadata"]["name"]] = now_rfc3339()
    updated = copy.deepcopy(budget)
    updated["status"] = {**status, "disruptionsAllowed": allowed - 1, "disruptedPods": disrupted}
    store.replace(
        POLICY_GROUP,
        "poddisruptionbudgets",
        metadata["namespace"],
        metadata["name"],
        updated,
        subresource="status",
    )


def _too_many_requests(cause: str) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
        {"causes": [{"reason": "DisruptionBudget", "message": cause}]},
    )


def _delete(
    store: Store, pod: dict[str, Any], options: dict[str, Any], dry_run: bool
) -> dict[str, Any]:
    metadata = pod["metadata"]
    store.delete(
        "",
        "pods",
        metadata["namespace"],
        metadata["name"],
        propagation_policy=options.get("propagationPolicy"),
        dry_run=dry_run,
    )
    return SUCCESS
