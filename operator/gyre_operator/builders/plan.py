"""What a reconcile decides: children to create, the status to write, events to post."""

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
    children: tuple[dict[str, Any], ...] = ()
    events: tuple[EventRecord, ...] = ()
    requeue_after: float | None = None
    finalizers: tuple[str, ...] | None = field(default=None)
