"""ModelVersion controller: verifies user-registered versions; holds deletion while served."""

from __future__ import annotations

from typing import Any

import kopf

from gyre_operator.api import GROUP, VERSION, ModelVersion
from gyre_operator.api.modelversion import ModelVersionPhase
from gyre_operator.builders.modelversion import (
    ModelVersionObserved,
    build_modelversion,
    verify_job_name,
)
from gyre_operator.controllers.cache import key_of
from gyre_operator.controllers.context import Context
from gyre_operator.controllers.inferenceservice import serving_model
from gyre_operator.controllers.reconcile import Controller
from gyre_operator.controllers.watch import track, trigger

KIND = ModelVersion.info.kind
DECIDED = (ModelVersionPhase.READY, ModelVersionPhase.FAILED)


async def observe(context: Context, obj: dict[str, Any]) -> ModelVersionObserved:
    """The verification Job, while the version is not yet decided."""
    if (obj.get("status") or {}).get("phase") in DECIDED:
        return ModelVersionObserved()
    namespace, name = key_of(obj)
    return ModelVersionObserved(job=await context.observed_job(namespace, verify_job_name(name)))


def follow(context: Context, version: dict[str, Any], old: dict[str, Any]) -> None:
    """A version that became Ready (or stopped being) may change what its model serves."""
    if (version.get("status") or {}).get("phase") != old.get("phase"):
        serving_model(context, version)


CONTROLLER: Controller[ModelVersionObserved] = Controller(
    KIND, observe, build_modelversion, on_status=follow
)


@kopf.on.event(GROUP, VERSION, ModelVersion.info.plural, id="modelversion")
async def modelversion_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """A ModelVersion changed: reconcile it."""
    context: Context = memo.context
    if not track(context, KIND, event.get("type"), body):
        return
    serving_model(context, body)
    if event.get("type") != "DELETED":
        trigger(context, KIND, body)
