"""The operator's life: start-up (context, queues, resync), login and clean-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from functools import partial
from typing import Any

import kopf
from kubernetes.config import ConfigException

from gyre_operator.api import GROUP, RESOURCES
from gyre_operator.config import OperatorConfig
from gyre_operator.controllers import (
    dataset,
    driftmonitor,
    inferenceservice,
    modelversion,
    trainingrun,
)
from gyre_operator.controllers.context import Context
from gyre_operator.controllers.queue import ReconcileQueue
from gyre_operator.controllers.reconcile import Controller, reconcile
from gyre_operator.kube import Kube, connection_info
from gyre_operator.metrics import register_resources

CONTROLLERS: tuple[Controller[Any], ...] = (
    dataset.CONTROLLER,
    trainingrun.CONTROLLER,
    modelversion.CONTROLLER,
    inferenceservice.CONTROLLER,
    driftmonitor.CONTROLLER,
)
# Events drive every reconcile; this slow pass only repairs a missed one.
RESYNC_SECONDS = 300.0


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping under gyre.dev; build the controllers' context and queues."""
    config: OperatorConfig = memo.setdefault("config", OperatorConfig())
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    context = Context(kube=Kube.connect(config.kubeconfig), config=config)
    for controller in CONTROLLERS:
        context.queues[controller.kind] = ReconcileQueue(
            controller.kind, partial(reconcile, context, controller)
        )
    memo.context = context
    memo.resync = asyncio.create_task(_resync(context))
    with contextlib.suppress(ValueError):  # already registered: a second start in one process
        register_resources(partial(_gyre_objects, context))


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop the resync pass and the queues."""
    memo.resync.cancel()
    context: Context = memo.context
    await asyncio.gather(*(q.stop() for q in context.queues.values()))


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """Connect with --kubeconfig when given, else in-cluster in a pod (the service account
    directory found through the local cluster's mount table too), else KUBECONFIG."""
    config: OperatorConfig = memo.setdefault("config", OperatorConfig())
    try:
        return connection_info(config.kubeconfig)
    except ConfigException as error:
        # kopf gives up at once on a LoginError, rather than retrying what cannot work.
        raise kopf.LoginError(f"cannot connect to a cluster: {error}") from error


async def _resync(context: Context) -> None:
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        for kind, queue in context.queues.items():
            for key in context.cache(kind).all_keys():
                queue.trigger(key)


def _gyre_objects(context: Context) -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in RESOURCES:
        for obj in context.cache(resource.info.kind).values():
            yield resource.info.kind, obj
