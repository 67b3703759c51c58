"""TrainingRun controller: one Job per run; a successful run registers a ModelVersion."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import kopf

from gyre_operator.api import API_VERSION, GROUP, VERSION, Dataset, ModelVersion, TrainingRun
from gyre_operator.api.training import TrainingRunPhase
from gyre_operator.builders.jobs import JobState
from gyre_operator.builders.plan import Plan
from gyre_operator.builders.trainingrun import (
    RUN_UID_LABEL,
    TrainingObserved,
    build_trainingrun,
    registering,
    training_job_name,
    unavailable_versions,
)
from gyre_operator.controllers.cache import key_of
from gyre_operator.controllers.context import Context
from gyre_operator.controllers.driftmonitor import wake_monitors
from gyre_operator.controllers.reconcile import Controller
from gyre_operator.controllers.watch import track, trigger
from gyre_operator.metrics import TRAINING_DURATION, TRAINING_RUNS

KIND = TrainingRun.info.kind
TERMINAL = (TrainingRunPhase.SUCCEEDED, TrainingRunPhase.FAILED)


async def observe(context: Context, obj: dict[str, Any]) -> TrainingObserved:
    """The run's Dataset and Job and, once the Job succeeded, the model's versions."""
    run = TrainingRun.model_validate(obj)
    namespace, name = key_of(obj)
    if run.status is not None and run.status.phase in TERMINAL:
        return TrainingObserved()  # decided: the builder reads neither Dataset nor Job
    found = await _dataset(context, namespace, run.spec.dataset_ref.name)
    dataset = Dataset.model_validate(found) if found is not None else None
    started = run.status is not None and bool(run.status.job_name)
    job = await context.observed_job(namespace, training_job_name(name), read_through=started)
    if job is None or job.state is not JobState.SUCCEEDED:
        return TrainingObserved(dataset=dataset, job=job)
    # Asked of the API server, not the cache: after a restart the cache may not hold it yet,
    # and registering a second version of one run is what must never happen.
    mine = await context.kube.list_objects(
        API_VERSION, ModelVersion.info.kind, namespace,
        f"{RUN_UID_LABEL}={run.metadata['uid']}",
    )  # fmt: skip
    model = run.spec.model
    versions = context.cache(ModelVersion.info.kind)
    held = context.version_holds.get((namespace, model), {})
    known = [int(v["spec"]["version"]) for v in versions.group((namespace, model))]
    known += [v for holder, v in held.items() if holder != run.metadata["uid"]]
    taken = unavailable_versions(
        model, tuple(known), lambda name: versions.get((namespace, name)) is not None
    )
    registered = mine[0]["metadata"]["name"] if mine else None
    return TrainingObserved(dataset=dataset, job=job, registered=registered, taken_versions=taken)


def hold_version(context: Context, obj: dict[str, Any], plan: Plan) -> None:
    """Hold the version number this plan registers until the run's next reconcile.

    Runs of one model that finish together are reconciled concurrently: each one sees the
    versions the others are about to create, instead of all choosing the same number.
    """
    scope = (key_of(obj)[0], str(obj["spec"]["model"]))
    held = context.version_holds.setdefault(scope, {})
    version = registering(plan)
    if version is None:
        held.pop(str(obj["metadata"]["uid"]), None)
    else:
        held[str(obj["metadata"]["uid"])] = version


async def _dataset(context: Context, namespace: str, name: str) -> dict[str, Any] | None:
    """The run's Dataset from the cache, else from the API server.

    Right after a start the watches may not have listed every Dataset yet; a run must not
    report DatasetNotFound (and fall back to Pending) for a Dataset that exists.
    """
    found = context.cache(Dataset.info.kind).get((namespace, name))
    if found is None:
        found = await context.kube.get(API_VERSION, Dataset.info.kind, namespace, name)
    return found


def account(context: Context, run: dict[str, Any], old: dict[str, Any]) -> None:
    """Count a run that just ended, and how long it trained."""
    new = run.get("status") or {}
    if old.get("phase") in TERMINAL or new.get("phase") not in TERMINAL:
        return
    reason = next((c["reason"] for c in new.get("conditions", []) if c["type"] == "Ready"), "")
    TRAINING_RUNS.labels(result=new["phase"], reason=reason).inc()
    if new.get("startTime") and new.get("completionTime") and new.get("jobName"):
        started = datetime.fromisoformat(new["startTime"])
        ended = datetime.fromisoformat(new["completionTime"])
        TRAINING_DURATION.labels(result=new["phase"]).observe((ended - started).total_seconds())


def on_status(context: Context, run: dict[str, Any], old: dict[str, Any]) -> None:
    """Count a run that ended; the monitor that started it follows it."""
    account(context, run, old)
    wake_monitors(context, run)


CONTROLLER: Controller[TrainingObserved] = Controller(
    KIND, observe, build_trainingrun, on_status=on_status, on_plan=hold_version
)


@kopf.on.event(GROUP, VERSION, TrainingRun.info.plural, id="trainingrun")
async def trainingrun_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """A TrainingRun changed: reconcile it."""
    context: Context = memo.context
    news = track(context, KIND, event.get("type"), body)
    if event.get("type") != "DELETED":
        if news:
            trigger(context, KIND, body)
        return
    scope = (key_of(body)[0], str(body["spec"]["model"]))
    context.version_holds.get(scope, {}).pop(str(body["metadata"]["uid"]), None)
