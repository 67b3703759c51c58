"""The demo's milestones: what changed in the loop's objects, read from their status.

`Progress` keeps the latest state of every object the demo watches and turns each new state
into milestones by comparing it with the previous one: a Dataset version, a TrainingRun's
end, a ModelVersion Ready, an InferenceService Ready, its canary steps, promotion or rollback,
a DriftMonitor's checks and the retraining runs it created. It answers the questions the demo
acts on: is the model served, how many checks found no drift, is the loop closed (the
retrained version serves alone). Pure: objects in, milestones out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

SERVED_MODEL = "wine"  # the examples' model, InferenceService and DriftMonitor name
KINDS = ("Dataset", "TrainingRun", "ModelVersion", "InferenceService", "DriftMonitor")
_SHOWN_METRICS = ("accuracy", "f1_macro")
_NO_DRIFT = "NoDrift"

Obj = Mapping[str, Any]


class Mark(StrEnum):
    """How a milestone is shown: reached, done by the demo, worth a look, or the end."""

    DONE = "✓"
    ACTION = "→"
    NOTICE = "!"
    FAILED = "✗"


@dataclass(frozen=True)
class Milestone:
    """One line of the demo's timeline; FAILED means the loop cannot go on."""

    text: str
    mark: Mark = Mark.DONE

    @property
    def failed(self) -> bool:
        """Whether the loop cannot go on."""
        return self.mark is Mark.FAILED


class Progress:
    """The latest state of each watched object, by kind and name, and the drift checks seen."""

    def __init__(self, model: str = SERVED_MODEL) -> None:
        self.model = model
        self.objects: dict[str, dict[str, Obj]] = {kind: {} for kind in KINDS}
        self.checks: list[tuple[str, str]] = []  # (check id, verdict), oldest first
        self._served = False

    def observe(self, kind: str, obj: Obj) -> list[Milestone]:
        """Record an object's new state; the milestones it reached since its previous one."""
        name = _name(obj)
        before = self.objects.setdefault(kind, {}).get(name)
        self.objects[kind][name] = obj
        if not self._followed(kind, obj):
            return []
        if kind == "Dataset":
            return _dataset(name, before, obj)
        if kind == "TrainingRun":
            return _training_run(name, before, obj)
        if kind == "ModelVersion":
            return _model_version(name, before, obj)
        if kind == "InferenceService":
            return self._inference_service(name, before, obj)
        if kind == "DriftMonitor":
            return self._drift_monitor(name, before, obj)
        return []

    def service(self) -> Obj | None:
        """The InferenceService of the model, once it has been Ready."""
        return self.objects["InferenceService"].get(self.model) if self._served else None

    def healthy_checks(self) -> int:
        """How many drift checks found no drift."""
        return sum(1 for _, verdict in self.checks if verdict == _NO_DRIFT)

    def retrained_versions(self) -> set[int]:
        """The version numbers registered by the TrainingRuns a DriftMonitor created."""
        runs = self.objects["TrainingRun"]
        versions = {
            name: int(version["spec"]["version"])
            for name, version in self.objects["ModelVersion"].items()
            if (version.get("spec") or {}).get("version") is not None
        }
        found: set[int] = set()
        for monitor in self.objects["DriftMonitor"].values():
            for record in status_of(monitor).get("retrainRuns") or []:
                registered = str(status_of(runs.get(str(record.get("name")))).get("modelVersion"))
                if registered in versions:
                    found.add(versions[registered])
        return found

    def loop_closed(self) -> bool:
        """Whether a retrained version serves alone: stable, with no canary beside it."""
        service = self.service()
        if service is None:
            return False
        status = status_of(service)
        return (
            status.get("canaryVersion") is None
            and status.get("stableVersion") in self.retrained_versions()
        )

    def goal_reached(self, *, shift: bool) -> bool:
        """The demo's goal: with the shift, the loop closed; without, a second check that
        found no drift."""
        return self.loop_closed() if shift else self.healthy_checks() >= 2

    def _followed(self, kind: str, obj: Obj) -> bool:
        """TrainingRuns and ModelVersions of other models are no part of the loop."""
        if kind not in ("TrainingRun", "ModelVersion"):
            return True
        return (obj.get("spec") or {}).get("model") == self.model

    def _inference_service(self, name: str, before: Obj | None, after: Obj) -> list[Milestone]:
        old, new = status_of(before), status_of(after)
        found = _failure("InferenceService", name, old, new)
        if new.get("phase") == "Ready" and not self._served and name == self.model:
            self._served = True
            found.append(
                Milestone(f"InferenceService {name} Ready (serving version {new['stableVersion']})")
            )
        canary, weight = new.get("canaryVersion"), new.get("canaryWeight") or 0
        moved = canary != old.get("canaryVersion") or weight != (old.get("canaryWeight") or 0)
        step = canary_step(after)
        if step is not None and weight and moved:
            found.append(
                Milestone(f"InferenceService {name} canary: version {canary} at {weight}% ({step})")
            )
        stable, previous = new.get("stableVersion"), old.get("stableVersion")
        if previous is not None and stable is not None and stable != previous:
            found.append(
                Milestone(f"InferenceService {name} promoted version {stable} (was {previous})")
            )
        known = {(f.get("version"), f.get("time")) for f in old.get("failedVersions") or []}
        for failed in new.get("failedVersions") or []:
            if (failed.get("version"), failed.get("time")) not in known:
                found.append(
                    Milestone(
                        f"InferenceService {name} rolled back version {failed.get('version')}: "
                        f"{failed.get('reason')}: {failed.get('message') or 'no message'}",
                        Mark.FAILED,
                    )
                )
        return found

    def _drift_monitor(self, name: str, before: Obj | None, after: Obj) -> list[Milestone]:
        old, new = status_of(before), status_of(after)
        found = [
            Milestone(m.text, Mark.NOTICE)  # a failed check is tried again at the next one
            for m in _failure("DriftMonitor", name, old, new)
        ]
        check = new.get("lastCheck") or {}
        if check.get("id") and check.get("id") != (old.get("lastCheck") or {}).get("id"):
            verdict = str(check.get("verdict"))
            self.checks.append((str(check["id"]), verdict))
            found.append(
                Milestone(
                    f"DriftMonitor {name} check {check['id']}: {_check_text(check)}",
                    Mark.DONE if verdict == _NO_DRIFT else Mark.NOTICE,
                )
            )
        known = {record.get("name") for record in old.get("retrainRuns") or []}
        for record in new.get("retrainRuns") or []:
            if record.get("name") not in known:
                found.append(
                    Milestone(
                        f"DriftMonitor {name} created TrainingRun {record.get('name')} "
                        f"(check {record.get('checkId')})"
                    )
                )
        return found


def _dataset(name: str, before: Obj | None, after: Obj) -> list[Milestone]:
    old, new = status_of(before), status_of(after)
    found = _failure("Dataset", name, old, new)
    version = new.get("currentVersion") or {}
    digest = str(version.get("digest") or "")
    previous = str((old.get("currentVersion") or {}).get("digest") or "")
    if new.get("phase") == "Ready" and digest and digest != previous:
        rows = version.get("rows")
        text = (
            f"Dataset {name} new version {digest[:12]} ({rows} rows)"
            if previous
            else f"Dataset {name} Ready (version {digest[:12]}, {rows} rows)"
        )
        found.append(Milestone(text))
    return found


def _training_run(name: str, before: Obj | None, after: Obj) -> list[Milestone]:
    old, new = status_of(before), status_of(after)
    found = _failure("TrainingRun", name, old, new)
    if _entered(old, new, "Succeeded"):
        shown = ", ".join(shown_metrics(new))
        found.append(Milestone(f"TrainingRun {name} Succeeded" + (f" ({shown})" if shown else "")))
    return found


def _model_version(name: str, before: Obj | None, after: Obj) -> list[Milestone]:
    old, new = status_of(before), status_of(after)
    found = _failure("ModelVersion", name, old, new)
    if _entered(old, new, "Ready"):
        found.append(Milestone(f"ModelVersion {name} Ready"))
    return found


def _failure(kind: str, name: str, old: Obj, new: Obj) -> list[Milestone]:
    """A Failed phase just entered, and why."""
    if not _entered(old, new, "Failed"):
        return []
    return [Milestone(f"{kind} {name} Failed: {failure_reason(new)}", Mark.FAILED)]


def failure_reason(status: Obj) -> str:
    """Why an object failed: its Ready condition's reason and message."""
    conditions = status.get("conditions") or []
    ready: Obj = next((c for c in conditions if c.get("type") == "Ready"), {})
    return f"{ready.get('reason') or 'Failed'}: {ready.get('message') or 'no message'}"


def _check_text(check: Obj) -> str:
    verdict = check.get("verdict")
    text = f"{verdict}, {check.get('samples')} samples"
    features = check.get("features") or []
    if verdict != "InsufficientData" and features:
        drifted = sum(1 for f in features if f.get("drifted"))
        text += f", {drifted} of {len(features)} features drifted"
    return text


def _entered(old: Obj, new: Obj, phase: str) -> bool:
    return new.get("phase") == phase and old.get("phase") != phase


def status_of(obj: Obj | None) -> Obj:
    """An object's status; empty when it has none (yet)."""
    return (obj or {}).get("status") or {}


def shown_metrics(status: Obj) -> list[str]:
    """A TrainingRun's metrics worth a glance, such as `accuracy 0.978`."""
    metrics = status.get("metrics") or {}
    return [f"{m} {metrics[m]:.3f}" for m in _SHOWN_METRICS if m in metrics]


def canary_step(service: Obj) -> str | None:
    """`step i of n` while an InferenceService's canary runs a step; None without a canary
    or once it is being promoted."""
    steps = len(((service.get("spec") or {}).get("rollout") or {}).get("steps") or [])
    step = status_of(service).get("currentStep")
    if status_of(service).get("canaryVersion") is None or step is None or step >= steps:
        return None
    return f"step {step + 1} of {steps}"


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))
