"""PriorityClasses (scheduling.k8s.io/v1): the two every cluster has, and the Priority
admission plugin, which gives a new pod the priority of its class."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SCHEDULING_GROUP = "scheduling.k8s.io"
DEFAULT_PREEMPTION_POLICY = "PreemptLowerPriority"

# What kube-apiserver creates at start (scheduling's bootstrap-system-priority-classes).
SYSTEM_PRIORITY_CLASSES: tuple[dict[str, Any], ...] = (
    {
        "metadata": {"name": "system-node-critical"},
        "value": 2000001000,
        "description": "Used for system critical pods that must not be moved from their current "
        "node.",
    },
    {
        "metadata": {"name": "system-cluster-critical"},
        "value": 2000000000,
        "description": "Used for system critical pods that must run in the cluster, but can be "
        "moved to another node if necessary.",
    },
)


class PriorityRefused(ValueError):
    """The Priority admission plugin refuses a pod (its message says why)."""


def admit_priority(spec: dict[str, Any], classes: Iterable[dict[str, Any]]) -> None:
    """Set a new pod's priority and preemptionPolicy from the class it names, or from the
    global default class when it names none (whose name it then gets); without either,
    priority 0 and PreemptLowerPriority.

    Raises PriorityRefused, with the admission plugin's message, for a class that does not
    exist or a priority or preemptionPolicy given that differs from the class's."""
    by_name = {c["metadata"]["name"]: c for c in classes}
    name = spec.get("priorityClassName")
    if name:
        chosen = by_name.get(str(name))
        if chosen is None:
            raise PriorityRefused(f"no PriorityClass with name {name} was found")
    else:
        chosen = next((c for c in by_name.values() if c.get("globalDefault")), None)
        if chosen is not None:
            spec["priorityClassName"] = chosen["metadata"]["name"]
    priority = int(chosen.get("value") or 0) if chosen is not None else 0
    policy = (chosen or {}).get("preemptionPolicy") or DEFAULT_PREEMPTION_POLICY
    if spec.get("priority") is not None and spec["priority"] != priority:
        raise PriorityRefused(
            f"the integer value of priority ({spec['priority']}) must not be provided in pod "
            f"spec; priority admission controller computed {priority} from the given "
            "PriorityClass name"
        )
    if spec.get("preemptionPolicy") and spec["preemptionPolicy"] != policy:
        raise PriorityRefused(
            f"the string value of PreemptionPolicy ({spec['preemptionPolicy']}) must not be "
            f"provided in pod spec; priority admission controller computed {policy} from the "
            "given PriorityClass name"
        )
    spec["priority"] = priority
    spec["preemptionPolicy"] = policy
