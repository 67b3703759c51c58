"""The demo's milestones: the statuses a Dataset, TrainingRun, ModelVersion and
InferenceService reach."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# (kind, name) of each object the demo follows, in the order the operator gets to them.
DEMO_TARGETS = (
    ("Dataset", "wine"),
    ("TrainingRun", "wine-1"),
    ("ModelVersion", "wine-v1"),
    ("InferenceService", "wine"),
)
_DONE_PHASES = {
    "Dataset": "Ready",
    "TrainingRun": "Succeeded",
    "ModelVersion": "Ready",
    "InferenceService": "Ready",
}
_SHOWN_METRICS = ("accuracy", "f1_macro")


@dataclass(frozen=True)
class Milestone:
    """A followed object reached its goal (failed False) or failed for good (failed True)."""

    kind: str
    name: str
    text: str
    failed: bool = False


def milestone(kind: str, obj: Mapping[str, Any]) -> Milestone | None:
    """The milestone an object's status shows, if any: its kind's goal phase or Failed."""
    name = str((obj.get("metadata") or {}).get("name", ""))
    status = obj.get("status") or {}
    phase = status.get("phase")
    if phase == "Failed":
        ready = _ready_condition(status)
        reason = ready.get("reason") or "Failed"
        message = ready.get("message") or "no message"
        return Milestone(kind, name, f"{kind} {name} Failed: {reason}: {message}", failed=True)
    if phase != _DONE_PHASES.get(kind):
        return None
    details = _details(kind, status)
    text = f"{kind} {name} {phase}" + (f" ({details})" if details else "")
    return Milestone(kind, name, text)


def milestones(
    events: Iterable[tuple[str, Mapping[str, Any]]],
    targets: Iterable[tuple[str, str]] = DEMO_TARGETS,
) -> Iterator[Milestone]:
    """The first milestone of each target in a stream of (kind, object) events, as they come;
    ends once every target reached one, or at the first failure."""
    pending = set(targets)
    for kind, obj in events:
        key = (kind, str((obj.get("metadata") or {}).get("name", "")))
        if key not in pending:
            continue
        reached = milestone(kind, obj)
        if reached is None:
            continue
        pending.discard(key)
        yield reached
        if reached.failed or not pending:
            return


def _ready_condition(status: Mapping[str, Any]) -> Mapping[str, Any]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return {}


def _details(kind: str, status: Mapping[str, Any]) -> str:
    if kind == "Dataset":
        version = status.get("currentVersion") or {}
        digest = str(version.get("digest", ""))[:12]
        return f"version {digest}, {version.get('rows')} rows" if digest else ""
    if kind == "TrainingRun":
        metrics = status.get("metrics") or {}
        return ", ".join(f"{m} {metrics[m]:.3f}" for m in _SHOWN_METRICS if m in metrics)
    if kind == "InferenceService" and status.get("stableVersion"):
        return f"serving version {status['stableVersion']}"
    return ""
