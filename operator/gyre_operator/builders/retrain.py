"""Retraining on drift: whether a drifted check may start a TrainingRun, and the run itself.

A monitor's runs are history that model lineage points at, so they carry the monitor's
labels but no ownerReference: deleting a monitor never deletes the runs (nor, through
them, anything a served model came from). Their deterministic name per check keeps a
restarted operator from starting a second run for the same check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from gyre_operator.api import (
    API_VERSION,
    Dataset,
    DriftMonitor,
    InferenceService,
    ModelVersion,
    TrainingRun,
    parse_duration,
    to_wire,
)
from gyre_operator.api.common import format_timestamp
from gyre_operator.api.drift import RetrainRecord
from gyre_operator.api.training import TrainingRunPhase, TrainingRunSpec
from gyre_operator.builders.naming import MANAGED_BY, child_name
from gyre_operator.builders.status import validation_message

MONITOR_LABEL = "gyre.dev/drift-monitor"
CHECK_LABEL = "gyre.dev/drift-check"
DAY = timedelta(days=1)


class RetrainReason(StrEnum):
    """Reasons of the Retraining condition."""

    DISABLED = "Disabled"
    CREATED = "RunCreated"
    TRAINING = "Training"
    ROLLING_OUT = "RollingOut"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    RUN_FAILED = "RunFailed"
    NO_FRESH_DATA = "NoFreshData"
    DATASET_NOT_READY = "DatasetNotReady"
    COOLDOWN = "Cooldown"
    DAILY_LIMIT = "DailyLimit"
    IN_FLIGHT = "RetrainInFlight"
    NO_TRAINER = "NoTrainer"
    REFUSED = "RetrainRefused"


@dataclass(frozen=True)
class RetrainState:
    """Where the monitor's newest retraining run is: in flight or not, and why."""

    in_flight: bool
    reason: RetrainReason
    message: str


@dataclass(frozen=True)
class RetrainDecision:
    """What a drifted check leads to: a run to create (with its record), or why not."""

    reason: RetrainReason
    message: str
    run: dict[str, Any] | None = None
    record: RetrainRecord | None = None


def retrain_run_name(monitor: str, check_id: str) -> str:
    """The deterministic name of the TrainingRun a check starts."""
    return child_name(monitor, f"retrain-{check_id}")


def retrain_state(
    record: RetrainRecord | None,
    run: TrainingRun | None,
    version: ModelVersion | None,
    service: InferenceService | None,
) -> RetrainState | None:
    """Whether the newest run is still on its way to traffic (training, or its version
    rolling out), or how it ended; None when the monitor never started one."""
    if record is None:
        return None
    if run is None:
        return RetrainState(False, RetrainReason.RUN_FAILED, f"TrainingRun {record.name} is gone")
    phase = run.status.phase if run.status is not None else None
    if phase == TrainingRunPhase.FAILED:
        return RetrainState(False, RetrainReason.RUN_FAILED, f"TrainingRun {record.name} failed")
    if phase != TrainingRunPhase.SUCCEEDED:
        return RetrainState(True, RetrainReason.TRAINING, f"TrainingRun {record.name} is training")
    if version is None or service is None:
        return RetrainState(False, RetrainReason.PROMOTED, f"TrainingRun {record.name} succeeded")
    number = version.spec.version
    status = service.status
    failed = {f.version for f in status.failed_versions} if status is not None else set()
    stable = status.stable_version if status is not None else None
    if number in failed:
        message = f"version {number} from {record.name} was rolled back"
        return RetrainState(False, RetrainReason.ROLLED_BACK, message)
    if stable is not None and stable >= number:
        return RetrainState(False, RetrainReason.PROMOTED, f"version {number} serves traffic")
    message = f"version {number} from {record.name} is rolling out"
    return RetrainState(True, RetrainReason.ROLLING_OUT, message)


@dataclass(frozen=True)
class RetrainInputs:
    """What deciding on a retraining run reads besides the monitor."""

    check_id: str
    served: ModelVersion
    trained_by: TrainingRun | None  # the run that made the served version, when known
    dataset: Dataset | None  # the Dataset to train on
    state: RetrainState | None
    existing: TrainingRun | None  # a run already named for this check (a restart)
    refused: str | None  # why the API server refused this check's run, if it did


def decide_retrain(
    obj: dict[str, Any], monitor: DriftMonitor, inputs: RetrainInputs, now: datetime
) -> RetrainDecision:
    """Whether a drifted check starts a TrainingRun: policy first, then the run's manifest."""
    retrain = monitor.spec.retrain
    name = retrain_run_name(monitor.metadata["name"], inputs.check_id)
    if not retrain.enabled:
        return RetrainDecision(RetrainReason.DISABLED, "retraining is not enabled")
    if inputs.existing is not None:  # created before a restart: record it, nothing more
        record = _record(name, inputs.check_id, inputs.existing)
        return RetrainDecision(RetrainReason.CREATED, f"created TrainingRun {name}", record=record)
    if inputs.refused is not None:
        return RetrainDecision(RetrainReason.REFUSED, f"TrainingRun {name}: {inputs.refused}")
    if inputs.state is not None and inputs.state.in_flight:
        return RetrainDecision(RetrainReason.IN_FLIGHT, inputs.state.message)
    digest, problem = _fresh_digest(monitor, inputs)
    if digest is None:
        return problem
    runs = monitor.status.retrain_runs if monitor.status is not None else []
    times = [datetime.fromisoformat(r.created_at) for r in runs]
    cooldown = parse_duration(retrain.cooldown)
    if times and now - max(times) < cooldown:
        until = max(times) + cooldown
        message = (
            f"the last run started {_ago(now - max(times))} ago; cooldown until {until:%H:%M:%S}Z"
        )
        return RetrainDecision(RetrainReason.COOLDOWN, message)
    if sum(1 for t in times if now - t < DAY) >= retrain.max_runs_per_day:
        message = f"{retrain.max_runs_per_day} runs in the last 24 hours (maxRunsPerDay)"
        return RetrainDecision(RetrainReason.DAILY_LIMIT, message)
    try:
        spec = _run_spec(monitor, inputs, digest)
    except ValueError as error:
        return RetrainDecision(RetrainReason.NO_TRAINER, str(error))
    manifest = _run_manifest(obj, name, inputs.check_id, spec)
    record = RetrainRecord(name=name, check_id=inputs.check_id, created_at=format_timestamp(now),
                           dataset_digest=digest)  # fmt: skip
    message = f"created TrainingRun {name} on {spec.dataset_ref.name} version {digest[:12]}"
    return RetrainDecision(RetrainReason.CREATED, message, run=manifest, record=record)


def _fresh_digest(
    monitor: DriftMonitor, inputs: RetrainInputs
) -> tuple[str | None, RetrainDecision]:
    """The dataset version to train on, or why there is none worth training on."""
    dataset = inputs.dataset
    name = retrain_dataset_name(monitor, inputs.served)
    pinned = monitor.spec.retrain.dataset_ref.digest if monitor.spec.retrain.dataset_ref else None
    current = dataset.status.current_version if dataset and dataset.status else None
    digest = pinned or (current.digest if current is not None else None)
    if digest is None or name is None:
        message = f"Dataset {name or '(unknown)'} has no profiled version to train on"
        return None, RetrainDecision(RetrainReason.DATASET_NOT_READY, message)
    lineage = inputs.served.spec.lineage
    runs = monitor.status.retrain_runs if monitor.status is not None else []
    trained = {lineage.dataset_digest if lineage else None} | {r.dataset_digest for r in runs}
    if digest in trained:
        message = (
            f"the data has drifted, but Dataset {name} has no version newer than "
            f"{digest[:12]}, which the served model (or an earlier run) was trained on"
        )
        return None, RetrainDecision(RetrainReason.NO_FRESH_DATA, message)
    return digest, RetrainDecision(RetrainReason.CREATED, "")


def retrain_dataset_name(monitor: DriftMonitor, served: ModelVersion) -> str | None:
    """The Dataset a monitor retrains on: retrain.datasetRef, else the served model's own."""
    ref = monitor.spec.retrain.dataset_ref
    if ref is not None:
        return ref.name
    return served.spec.lineage.dataset if served.spec.lineage else None


def _run_spec(monitor: DriftMonitor, inputs: RetrainInputs, digest: str) -> TrainingRunSpec:
    """The new run: the template's overrides over the spec of the run that made the model."""
    template = monitor.spec.retrain.template
    base = inputs.trained_by.spec if inputs.trained_by is not None else None
    trainer = (template.trainer if template else None) or (base.trainer if base else None)
    if trainer is None:
        raise ValueError(
            f"no trainer to retrain {inputs.served.spec.model} with: the served version was "
            "not made by a TrainingRun here; set spec.retrain.template.trainer"
        )
    fields: dict[str, Any] = {
        "datasetRef": {"name": retrain_dataset_name(monitor, inputs.served), "digest": digest},
        "model": inputs.served.spec.model,
        "trainer": to_wire(trainer),
    }
    gates = (template.gates if template else None) or (base.gates if base else None)
    if gates is not None:
        fields["gates"] = [to_wire(g) for g in gates]
    resources = (template.resources if template else None) or (base.resources if base else None)
    if resources is not None:
        fields["resources"] = to_wire(resources)
    deadline = (template.active_deadline_seconds if template else None) or (
        base.active_deadline_seconds if base else None
    )
    if deadline is not None:
        fields["activeDeadlineSeconds"] = deadline
    if base is not None:
        fields["backoffLimit"] = base.backoff_limit
    try:
        return TrainingRunSpec.model_validate(fields)
    except ValidationError as error:
        raise ValueError(
            f"the TrainingRun would be invalid: {validation_message(error)}"
        ) from error


def _run_manifest(
    obj: dict[str, Any], name: str, check_id: str, spec: TrainingRunSpec
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": TrainingRun.info.kind,
        "metadata": {
            "name": name,
            "namespace": obj["metadata"]["namespace"],
            "labels": {
                **MANAGED_BY,
                MONITOR_LABEL: obj["metadata"]["name"],
                CHECK_LABEL: check_id,
            },
        },
        "spec": to_wire(spec),
    }


def _record(name: str, check_id: str, run: TrainingRun) -> RetrainRecord:
    created = str(run.metadata.get("creationTimestamp") or "")
    return RetrainRecord(name=name, check_id=check_id, created_at=created,
                         dataset_digest=run.spec.dataset_ref.digest)  # fmt: skip


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds}s"
