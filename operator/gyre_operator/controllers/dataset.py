"""Dataset controller: profile Jobs in, versions out; a Ready Dataset wakes its TrainingRuns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from gyre_operator.api import GROUP, VERSION, Dataset, TrainingRun
from gyre_operator.builders.dataset import (
    DatasetObserved,
    build_dataset,
    profile_job_name,
    refresh_slot,
)
from gyre_operator.builders.trainingrun import waits_for
from gyre_operator.controllers.cache import key_of
from gyre_operator.controllers.context import Context
from gyre_operator.controllers.driftmonitor import wake_monitors
from gyre_operator.controllers.reconcile import Controller
from gyre_operator.controllers.watch import track, trigger

KIND = Dataset.info.kind


async def observe(context: Context, obj: dict[str, Any]) -> DatasetObserved:
    """The profile Job for the Dataset's current spec and refresh slot."""
    dataset = Dataset.model_validate(obj)
    slot, _ = refresh_slot(dataset, datetime.now(UTC))
    namespace, _ = key_of(obj)
    job = await context.observed_job(namespace, profile_job_name(dataset, slot))
    return DatasetObserved(jobs=(job,) if job is not None else ())


def on_status(context: Context, dataset: dict[str, Any], old: dict[str, Any]) -> None:
    """A Dataset that became Ready (or changed version) may start the runs waiting for it,
    and give its monitors a reference or fresh data to retrain on."""
    wake_waiting_runs(context, dataset)
    wake_monitors(context, dataset)


CONTROLLER: Controller[DatasetObserved] = Controller(
    KIND, observe, build_dataset, on_status=on_status
)


@kopf.on.event(GROUP, VERSION, Dataset.info.plural, id="dataset")
async def dataset_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A Dataset changed: reconcile it, and wake the TrainingRuns that wait for it."""
    context: Context = memo.context
    if not track(context, KIND, event.get("type"), body) or event.get("type") == "DELETED":
        return
    trigger(context, KIND, body)
    wake_waiting_runs(context, body)
    wake_monitors(context, body)


def wake_waiting_runs(context: Context, dataset: Mapping[str, Any]) -> None:
    """Reconcile the TrainingRuns that wait for this Dataset (not yet started)."""
    namespace, name = key_of(dataset)
    for run in context.cache(TrainingRun.info.kind).values():
        if waits_for(run, namespace, name):
            trigger(context, TrainingRun.info.kind, run)
