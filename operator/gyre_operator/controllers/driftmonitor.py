"""DriftMonitor controller: check Jobs per slot, verdicts into status and metrics, retraining."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import kopf

from gyre_operator.api import (
    API_VERSION,
    GROUP,
    VERSION,
    Dataset,
    DriftMonitor,
    InferenceService,
    ModelVersion,
    TrainingRun,
)
from gyre_operator.builders.driftcheck import COMPONENT, check_job_name
from gyre_operator.builders.driftmonitor import (
    MonitorObserved,
    build_driftmonitor,
    concerns_monitor,
    reference_dataset_name,
    unrecorded_check_ids,
)
from gyre_operator.builders.jobs import ObservedJob
from gyre_operator.builders.naming import COMPONENT_LABEL
from gyre_operator.builders.retrain import (
    retrain_dataset_name,
    retrain_run_name,
)
from gyre_operator.builders.trainingrun import model_version_name
from gyre_operator.controllers.cache import key_of
from gyre_operator.controllers.context import Context
from gyre_operator.controllers.reconcile import Controller
from gyre_operator.controllers.watch import track, trigger
from gyre_operator.metrics import (
    DRIFT_CHECK_DURATION,
    DRIFT_CHECKS,
    DRIFT_SCORE,
    DRIFTED_FEATURES,
    RETRAIN_TRIGGERS,
)

KIND = DriftMonitor.info.kind


async def observe(context: Context, obj: dict[str, Any]) -> MonitorObserved:
    """The monitored service, the version it serves and its lineage, the monitor's check
    Jobs and retraining runs."""
    monitor = DriftMonitor.model_validate(obj)
    namespace, name = key_of(obj)
    found = context.cache(InferenceService.info.kind).get(
        (namespace, monitor.spec.inference_service_ref.name)
    )
    service = InferenceService.model_validate(found) if found is not None else None
    served = _served(context, namespace, service)
    trained_by = None
    if served is not None and served.spec.lineage and served.spec.lineage.training_run:
        trained_by = await _run(context, namespace, served.spec.lineage.training_run)
    datasets: dict[str, Dataset] = {}
    for wanted in {reference_dataset_name(monitor, served), _retrain_dataset(monitor, served)}:
        if wanted is not None and (dataset := await _dataset(context, namespace, wanted)):
            datasets[wanted] = dataset
    jobs = await _check_jobs(context, obj)
    runs = {}
    for identifier in unrecorded_check_ids(monitor, jobs):
        run_name = retrain_run_name(name, identifier)
        if (run := await _run(context, namespace, run_name, read_through=True)) is not None:
            runs[run_name] = run
    records = monitor.status.retrain_runs if monitor.status is not None else []
    newest = await _run(context, namespace, records[0].name, read_through=True) if records else None
    version = None
    if newest is not None and newest.status is not None and newest.status.model_version:
        found = context.cache(ModelVersion.info.kind).get((namespace, newest.status.model_version))
        version = ModelVersion.model_validate(found) if found is not None else None
    return MonitorObserved(
        service=service, served=served, trained_by=trained_by, datasets=datasets, jobs=jobs,
        retrain_run=newest, retrain_version=version, runs=runs,
        refused={k[1]: v for k, v in context.refusals.items() if k[0] == namespace},
    )  # fmt: skip


def _served(
    context: Context, namespace: str, service: InferenceService | None
) -> ModelVersion | None:
    if service is None or service.status is None or service.status.stable_version is None:
        return None
    name = model_version_name(service.spec.model, service.status.stable_version)
    found = context.cache(ModelVersion.info.kind).get((namespace, name))
    return ModelVersion.model_validate(found) if found is not None else None


def _retrain_dataset(monitor: DriftMonitor, served: ModelVersion | None) -> str | None:
    return retrain_dataset_name(monitor, served) if served is not None else None


async def _run(
    context: Context, namespace: str, name: str, *, read_through: bool = False
) -> TrainingRun | None:
    """A TrainingRun from the cache; read_through asks the API server when the cache lacks
    it (right after a start), where a missing run would lead to starting it again."""
    found = context.cache(TrainingRun.info.kind).get((namespace, name))
    if found is None and read_through:
        found = await context.kube.get(API_VERSION, TrainingRun.info.kind, namespace, name)
    return TrainingRun.model_validate(found) if found is not None else None


async def _dataset(context: Context, namespace: str, name: str) -> Dataset | None:
    found = context.cache(Dataset.info.kind).get((namespace, name))
    if found is None:
        found = await context.kube.get(API_VERSION, Dataset.info.kind, namespace, name)
    return Dataset.model_validate(found) if found is not None else None


async def _check_jobs(context: Context, obj: Mapping[str, Any]) -> tuple[ObservedJob, ...]:
    """The monitor's check Jobs, each with its pod's termination once finished."""
    namespace, _ = key_of(obj)
    uid = obj["metadata"]["uid"]
    names = [
        job["metadata"]["name"]
        for job in context.cache("Job").values()
        if job["metadata"].get("namespace") == namespace
        and (job["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == COMPONENT
        and any(r.get("uid") == uid for r in job["metadata"].get("ownerReferences") or [])
    ]
    jobs = [await context.observed_job(namespace, name) for name in names]
    return tuple(job for job in jobs if job is not None)


def account(context: Context, obj: dict[str, Any], old: dict[str, Any]) -> None:
    """Export a newly recorded check's scores, and count the runs a check started."""
    new = obj.get("status") or {}
    namespace, name = key_of(obj)
    check = new.get("lastCheck") or {}
    if check and check.get("id") != (old.get("lastCheck") or {}).get("id"):
        DRIFT_CHECKS.labels(namespace=namespace, monitor=name, verdict=check["verdict"]).inc()
        features = check.get("features") or []
        DRIFTED_FEATURES.labels(namespace=namespace, monitor=name).set(
            sum(1 for f in features if f.get("drifted"))
        )
        for feature in features:
            scores = feature.get("scores") or {feature["method"]: feature["score"]}
            for method, score in scores.items():
                DRIFT_SCORE.labels(
                    namespace=namespace, monitor=name, feature=feature["name"], method=method
                ).set(score)
        _observe_duration(context, namespace, check["id"], name)
    before = {r["name"] for r in old.get("retrainRuns") or []}
    for record in new.get("retrainRuns") or []:
        if record["name"] not in before:
            RETRAIN_TRIGGERS.labels(namespace=namespace, monitor=name).inc()


def _observe_duration(context: Context, namespace: str, identifier: str, monitor: str) -> None:
    job = context.cache("Job").get((namespace, check_job_name(monitor, identifier)))
    status = (job or {}).get("status") or {}
    if status.get("startTime") and status.get("completionTime"):
        started = datetime.fromisoformat(status["startTime"])
        ended = datetime.fromisoformat(status["completionTime"])
        DRIFT_CHECK_DURATION.observe((ended - started).total_seconds())


CONTROLLER: Controller[MonitorObserved] = Controller(
    KIND, observe, build_driftmonitor, on_status=account
)


@kopf.on.event(GROUP, VERSION, DriftMonitor.info.plural, id="driftmonitor")
async def driftmonitor_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """A DriftMonitor changed: reconcile it."""
    context: Context = memo.context
    if track(context, KIND, event.get("type"), body) and event.get("type") != "DELETED":
        trigger(context, KIND, body)


def wake_monitors(context: Context, changed: Mapping[str, Any]) -> None:
    """Reconcile the monitors a change concerns (see concerns_monitor)."""
    if KIND not in context.queues:
        return
    for monitor in context.cache(KIND).values():
        if concerns_monitor(monitor, changed):
            trigger(context, KIND, monitor)
