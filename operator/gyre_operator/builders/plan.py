"""What a reconcile decides: children to create or apply, the status to write, events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True)
class EventRecord:
    """A Kubernetes Event about the reconciled object."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    """The outcome of one build: what the controller must make true."""

    status: dict[str, Any]
    # Created once and never changed (Jobs, registered versions): creation is the arbiter.
    children: tuple[dict[str, Any], ...] = ()
    # Kept as built (server-side apply): only those not already equal on Gyre's fields.
    applied: tuple[dict[str, Any], ...] = ()
    # Children that must go: (apiVersion, kind, namespace, name).
    deleted: tuple[tuple[str, str, str, str], ...] = ()
    events: tuple[EventRecord, ...] = ()
    requeue_after: float | None = None
    finalizers: tuple[str, ...] | None = field(default=None)
    # Annotations the reconcile consumed (a one-off request such as a manual rollout action).
    cleared_annotations: tuple[str, ...] = ()
