"""DriftMonitor: one check Job per slot, its verdict in the status, retraining on drift."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gyre_operator.api import (
    ConditionStatus,
    Dataset,
    DriftMonitor,
    InferenceService,
    ModelVersion,
    TrainingRun,
    get_condition,
    set_condition,
    to_wire,
)
from gyre_operator.api.common import format_timestamp
from gyre_operator.api.drift import (
    MAX_CHECK_RECORDS,
    MAX_RETRAIN_RECORDS,
    DriftCheck,
    DriftMonitorPhase,
    DriftMonitorStatus,
    Verdict,
)
from gyre_operator.builders.driftcheck import (
    CHECK_ANNOTATION,
    CheckOutcome,
    InvalidSchedule,
    Slots,
    build_check_job,
    check_id,
    check_job_name,
    check_outcome,
    check_slots,
    seconds_until,
)
from gyre_operator.builders.jobs import JobState, ObservedJob
from gyre_operator.builders.plan import NORMAL, WARNING, EventRecord, Plan
from gyre_operator.builders.retrain import (
    MONITOR_LABEL,
    RetrainDecision,
    RetrainInputs,
    RetrainReason,
    RetrainState,
    decide_retrain,
    retrain_dataset_name,
    retrain_run_name,
    retrain_state,
)
from gyre_operator.builders.status import (
    generation_of,
    invalid_spec_plan,
    ready_reason,
    with_ready,
)
from gyre_operator.config import OperatorConfig

DRIFTED = "Drifted"
RETRAINING = "Retraining"
# Finished check Jobs kept for `kubectl logs`, like a CronJob's successfulJobsHistoryLimit.
KEPT_CHECK_JOBS = 3
PHASES = {
    Verdict.NO_DRIFT: DriftMonitorPhase.HEALTHY,
    Verdict.DRIFT: DriftMonitorPhase.DRIFTED,
    Verdict.INSUFFICIENT_DATA: DriftMonitorPhase.INSUFFICIENT_DATA,
}
RUNNING = (RetrainReason.CREATED, RetrainReason.TRAINING, RetrainReason.ROLLING_OUT)


@dataclass(frozen=True)
class MonitorObserved:
    """What a DriftMonitor's reconcile reads."""

    service: InferenceService | None = None
    served: ModelVersion | None = None  # the version the service's stable track serves
    trained_by: TrainingRun | None = None  # the run that made it, when known
    datasets: dict[str, Dataset] = field(default_factory=dict)
    jobs: tuple[ObservedJob, ...] = ()  # the monitor's check Jobs
    retrain_run: TrainingRun | None = None  # the newest run the monitor started
    retrain_version: ModelVersion | None = None  # the version that run registered
    runs: dict[str, TrainingRun] = field(default_factory=dict)  # by name, for these checks
    refused: dict[str, str] = field(default_factory=dict)  # run name -> why it was refused


@dataclass(frozen=True)
class Target:
    """What a check needs: the reference profile, or why there is none (reason, message)."""

    reference: str | None
    reason: str = ""
    message: str = ""


def reference_dataset_name(monitor: DriftMonitor, served: ModelVersion | None) -> str | None:
    """The Dataset whose profile is the reference: spec.reference, else the served lineage."""
    ref = monitor.spec.reference.dataset_ref
    if ref is not None:
        return ref.name
    lineage = served.spec.lineage if served is not None else None
    return lineage.dataset if lineage is not None else None


def concerns_monitor(monitor: Mapping[str, Any], changed: Mapping[str, Any]) -> bool:
    """Whether a change can change a monitor's decisions: a Dataset of its namespace (a
    reference or fresh data), the InferenceService it watches, or a TrainingRun it started."""
    namespace = (changed.get("metadata") or {}).get("namespace")
    if monitor["metadata"].get("namespace") != namespace:
        return False
    kind = changed.get("kind")
    name = changed["metadata"]["name"]
    started_by = (changed["metadata"].get("labels") or {}).get(MONITOR_LABEL)
    return (
        kind == Dataset.info.kind
        or (kind == InferenceService.info.kind
            and monitor["spec"]["inferenceServiceRef"]["name"] == name)
        or (kind == TrainingRun.info.kind and started_by == monitor["metadata"]["name"])
    )  # fmt: skip


def unrecorded_check_ids(monitor: DriftMonitor, jobs: tuple[ObservedJob, ...]) -> list[str]:
    """The checks whose Jobs finished but whose outcome the status does not hold yet."""
    newest = _newest_recorded(monitor.status or DriftMonitorStatus())
    return sorted(
        identifier
        for job in jobs
        if job.state is not JobState.ACTIVE
        and (identifier := job.annotations.get(CHECK_ANNOTATION, "")) > newest
    )


def resolve_target(monitor: DriftMonitor, observed: MonitorObserved) -> Target:
    """The reference profile a check compares with, or what stands in the way."""
    namespace = monitor.metadata["namespace"]
    service_name = monitor.spec.inference_service_ref.name
    service = observed.service
    if service is None:
        message = f"InferenceService {namespace}/{service_name} not found"
        return Target(None, "InferenceServiceNotFound", message)
    if not service.spec.request_logging.enabled or service.spec.request_logging.sample_rate == 0:
        message = f"InferenceService {service_name} does not log requests (spec.requestLogging)"
        return Target(None, "RequestLoggingDisabled", message)
    served = observed.served
    if served is None:
        return Target(None, "NoServedModel", f"InferenceService {service_name} serves no model yet")
    name = reference_dataset_name(monitor, served)
    if name is None:
        message = (
            f"ModelVersion {served.metadata['name']} has no dataset lineage; "
            "set spec.reference.datasetRef"
        )
        return Target(None, "ReferenceNotFound", message)
    dataset = observed.datasets.get(name)
    status = dataset.status if dataset is not None else None
    if status is None:
        return Target(None, "ReferenceNotFound", f"Dataset {name} not found or not profiled")
    ref = monitor.spec.reference.dataset_ref
    if ref is not None and ref.digest is None:
        version = status.current_version
    else:
        lineage = served.spec.lineage
        digest = ref.digest if ref is not None else lineage.dataset_digest if lineage else None
        version = next((v for v in status.versions if v.digest == digest), None)
    if version is None:
        message = (
            f"Dataset {name} has no profiled version to compare with "
            "(the trained-on version may have left its bounded history)"
        )
        return Target(None, "ReferenceNotFound", message)
    return Target(version.profile_uri)


class _Build:
    """One build's working state: the status being made and what goes with it."""

    def __init__(self, obj: dict[str, Any], observed: MonitorObserved, now: datetime) -> None:
        self.obj = obj
        self.monitor = DriftMonitor.model_validate(obj)
        self.observed = observed
        self.now = now
        self.status = (self.monitor.status or DriftMonitorStatus()).model_copy(deep=True)
        self.generation = generation_of(obj)
        self.events: list[EventRecord] = []
        self.children: list[dict[str, Any]] = []
        self.decision: RetrainDecision | None = None

    def condition(
        self, kind: str, status: ConditionStatus | bool, reason: str, message: str
    ) -> None:
        self.status.conditions = set_condition(
            self.status.conditions, kind, status, reason, message,
            observed_generation=self.generation, now=self.now,
        )  # fmt: skip

    def event(self, kind: str, reason: str, message: str) -> None:
        self.events.append(EventRecord(kind, reason, message))


def build_driftmonitor(
    obj: dict[str, Any], observed: MonitorObserved, config: OperatorConfig, now: datetime
) -> Plan:
    """The plan for a DriftMonitor: record finished checks, start the slot's check, retrain."""
    build = _Build(obj, observed, now)
    try:
        slots = check_slots(build.monitor, now)
    except InvalidSchedule as error:
        return invalid_spec_plan(obj, str(error), now)
    target = resolve_target(build.monitor, observed)
    for identifier in unrecorded_check_ids(build.monitor, observed.jobs):
        job = next(j for j in observed.jobs if j.annotations.get(CHECK_ANNOTATION) == identifier)
        _record(build, check_outcome(job, identifier, now))
    _follow_retraining(build)
    _start_check(build, slots, target, config)
    build.status.observed_generation = build.generation
    build.status.next_check_time = format_timestamp(slots.next)
    build.status.phase = _phase(build.status)
    _ready(build, target, slots)
    return Plan(
        status=to_wire(build.status),
        children=tuple(build.children),
        deleted=_finished_jobs_to_delete(build),
        events=tuple(build.events),
        requeue_after=seconds_until(slots.next, now),
    )


def _newest_recorded(status: DriftMonitorStatus) -> str:
    ids = [r.id for r in status.history] + ([status.last_check.id] if status.last_check else [])
    return max(ids, default="")


def _record(build: _Build, outcome: CheckOutcome) -> None:
    """A finished check into the status: last check, history, events, retraining."""
    status = build.status
    record = outcome.record
    check = outcome.check
    if check is not None:
        status.last_check = check
        _check_events(build, check, outcome.reason)
    else:
        build.event(WARNING, "CheckFailed", f"check {record.id} failed: {record.failure}")
    if check is not None and check.verdict == Verdict.DRIFT:
        decision = _decide(build, check)
        if decision.run is not None:
            build.children.append(decision.run)
        if decision.record is not None:
            record = record.model_copy(update={"retrain_run": decision.record.name})
            runs = [r for r in status.retrain_runs if r.name != decision.record.name]
            status.retrain_runs = [decision.record, *runs][:MAX_RETRAIN_RECORDS]
        build.decision = decision
    status.history = [record, *status.history][:MAX_CHECK_RECORDS]


def _check_events(build: _Build, check: DriftCheck, reason: str) -> None:
    checked = len(check.features)
    drifted = [f.name for f in check.features if f.drifted]
    where = f"check {check.id}"
    if check.verdict == Verdict.INSUFFICIENT_DATA:
        minimum = build.monitor.spec.min_samples
        why = "no logged request in the window" if reason else f"{check.samples} samples"
        build.event(NORMAL, "InsufficientData", f"{where}: {why}, fewer than minSamples {minimum}")
        build.condition(DRIFTED, ConditionStatus.UNKNOWN, "InsufficientData", f"{where}: {why}")
        return
    summary = f"{len(drifted)} of {checked} features drifted on {check.samples} samples"
    if check.verdict == Verdict.NO_DRIFT:
        build.event(NORMAL, "NoDrift", f"{where}: {summary}")
        build.condition(DRIFTED, False, "NoDrift", f"{where}: {summary}")
        return
    named = f"{summary}: {', '.join(drifted[:10])}{' ...' if len(drifted) > 10 else ''}"
    build.event(WARNING, "DriftDetected", f"{where}: {named}")
    build.condition(DRIFTED, True, "DriftDetected", f"{where}: {named}")


def _decide(build: _Build, check: DriftCheck) -> RetrainDecision:
    """Retrain or not on a drifted check; the Drifted condition says NoFreshData when so."""
    observed = build.observed
    served = observed.served
    if served is None:
        return RetrainDecision(RetrainReason.DISABLED, "no served model to retrain")
    name = retrain_run_name(build.monitor.metadata["name"], check.id)
    dataset_name = retrain_dataset_name(build.monitor, served)
    inputs = RetrainInputs(
        check_id=check.id,
        served=served,
        trained_by=observed.trained_by,
        dataset=observed.datasets.get(dataset_name) if dataset_name else None,
        state=_state(build),
        existing=observed.runs.get(name),
        refused=observed.refused.get(name),
    )
    decision = decide_retrain(build.obj, build.monitor, inputs, build.now)
    if decision.reason == RetrainReason.NO_FRESH_DATA:
        build.condition(DRIFTED, True, decision.reason, decision.message)
    _retrain_event(build, decision.reason, decision.message)
    in_flight = decision.reason in RUNNING or decision.reason == RetrainReason.IN_FLIGHT
    build.condition(RETRAINING, in_flight, decision.reason, decision.message)
    return decision


def _state(build: _Build) -> RetrainState | None:
    runs = build.status.retrain_runs
    observed = build.observed
    return retrain_state(
        runs[0] if runs else None,
        observed.retrain_run,
        observed.retrain_version,
        observed.service,
    )


def _retrain_event(build: _Build, reason: RetrainReason, message: str) -> None:
    warnings = (
        RetrainReason.NO_FRESH_DATA,
        RetrainReason.REFUSED,
        RetrainReason.NO_TRAINER,
        RetrainReason.DATASET_NOT_READY,
        RetrainReason.RUN_FAILED,
        RetrainReason.ROLLED_BACK,
    )
    build.event(WARNING if reason in warnings else NORMAL, reason, message)


def _follow_retraining(build: _Build) -> None:
    """The Retraining condition follows the newest run to traffic (or its end)."""
    if build.decision is not None:
        return
    enabled = build.monitor.spec.retrain.enabled
    previous = get_condition(build.status.conditions, RETRAINING)
    state = _state(build)
    if state is not None and state.in_flight:
        build.condition(RETRAINING, True, state.reason, state.message)
    elif previous is not None and previous.status == ConditionStatus.TRUE and state is not None:
        build.condition(RETRAINING, False, state.reason, state.message)
        _retrain_event(build, state.reason, state.message)
    elif previous is None or (not enabled) != (previous.reason == RetrainReason.DISABLED):
        reason = RetrainReason.DISABLED if not enabled else "NotNeeded"
        message = "retraining is not enabled" if not enabled else "no check has called for it"
        build.condition(RETRAINING, False, reason, message)


def _start_check(build: _Build, slots: Slots, target: Target, config: OperatorConfig) -> None:
    """Create the Job of the latest slot, once, and never beside a check still running."""
    if slots.current is None or target.reference is None:
        return
    identifier = check_id(slots.current)
    if identifier <= _newest_recorded(build.status):
        return
    name = check_job_name(build.monitor.metadata["name"], identifier)
    if any(j.state is JobState.ACTIVE or j.name == name for j in build.observed.jobs):
        return
    build.children.append(
        build_check_job(build.obj, build.monitor, identifier, target.reference, config)
    )
    build.event(NORMAL, "CheckStarted", f"created check Job {name}")


def _phase(status: DriftMonitorStatus) -> DriftMonitorPhase:
    newest = status.history[0] if status.history else None
    if newest is None:
        return DriftMonitorPhase.PENDING
    if newest.verdict is None:
        return DriftMonitorPhase.FAILED
    return PHASES[Verdict(newest.verdict)]


def _ready(build: _Build, target: Target, slots: Slots) -> None:
    status = build.status
    newest = status.history[0] if status.history else None
    if target.reference is None:
        ready, reason, message = False, target.reason, target.message
        if ready_reason(status.conditions) != reason:
            build.event(WARNING, reason, message)
    elif newest is not None and newest.verdict is None:
        reason, _, detail = (newest.failure or "CheckFailed").partition(": ")
        ready, message = False, f"check {newest.id} failed: {detail or reason}"
    elif status.last_check is not None:
        check = status.last_check
        ready, reason = True, "Checked"
        message = f"check {check.id}: {check.verdict} on {check.samples} samples"
    else:
        ready, reason = False, "WaitingForFirstCheck"
        message = f"the first check runs at {format_timestamp(slots.next)}"
    status.conditions = with_ready(
        status.conditions, ready, reason, message, generation=build.generation, now=build.now
    )


def _finished_jobs_to_delete(build: _Build) -> tuple[tuple[str, str, str, str], ...]:
    """Finished, recorded check Jobs beyond the newest few."""
    newest = _newest_recorded(build.status)
    finished = sorted(
        (j for j in build.observed.jobs if j.state is not JobState.ACTIVE
         and j.annotations.get(CHECK_ANNOTATION, "") <= newest),
        key=lambda j: j.annotations.get(CHECK_ANNOTATION, ""),
        reverse=True,
    )  # fmt: skip
    namespace = build.monitor.metadata["namespace"]
    return tuple(("batch/v1", "Job", namespace, j.name) for j in finished[KEPT_CHECK_JOBS:])
