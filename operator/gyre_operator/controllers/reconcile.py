"""The one reconcile every kind runs: read -> build (pure) -> make children so -> write status."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from gyre_operator.builders.plan import Plan
from gyre_operator.builders.status import invalid_spec_plan, validation_message
from gyre_operator.config import OperatorConfig
from gyre_operator.controllers.cache import key_of
from gyre_operator.controllers.context import Context
from gyre_operator.controllers.queue import Key
from gyre_operator.kube import Conflict, Refused
from gyre_operator.metrics import RECONCILE_DURATION, RECONCILE_ERRORS

ObservedT = TypeVar("ObservedT")
# A child that turned out to exist already is read back and the build runs again; more
# rounds than this means something else keeps taking the names we choose.
MAX_ROUNDS = 5


@dataclass(frozen=True)
class Controller(Generic[ObservedT]):
    """A kind's reconcile: how to read its children and which builder decides."""

    kind: str
    observe: Callable[[Context, dict[str, Any]], Awaitable[ObservedT]]
    build: Callable[[dict[str, Any], ObservedT, OperatorConfig, datetime], Plan]
    # Runs after a status write: what else follows from the change (metrics, dependents).
    on_status: Callable[[Context, dict[str, Any], dict[str, Any]], None] | None = None
    # Runs right after the build, before anything is awaited: state other reconciles of
    # the kind must see at once (such as a version number about to be taken).
    on_plan: Callable[[Context, dict[str, Any], Plan], None] | None = None
    # Runs after every completed reconcile with the object as it now is: writes that follow
    # from it on objects of other kinds (which versions a service serves).
    settle: Callable[[Context, dict[str, Any]], Awaitable[None]] | None = None


async def reconcile(context: Context, controller: Controller[ObservedT], key: Key) -> float | None:
    """Reconcile one object; returns when to look again (None: on the next event)."""
    started = time.perf_counter()
    try:
        return await _reconcile(context, controller, key)
    except Exception as error:
        RECONCILE_ERRORS.labels(kind=controller.kind, reason=type(error).__name__).inc()
        raise
    finally:
        RECONCILE_DURATION.labels(kind=controller.kind).observe(time.perf_counter() - started)


async def _reconcile(context: Context, controller: Controller[ObservedT], key: Key) -> float | None:
    cache = context.cache(controller.kind)
    for _ in range(MAX_ROUNDS):
        obj = cache.get(key)
        if obj is None:
            return None  # deleted
        try:
            observed = await controller.observe(context, obj)
            plan = controller.build(obj, observed, context.config, datetime.now(UTC))
        except ValidationError as error:
            plan = invalid_spec_plan(obj, validation_message(error), datetime.now(UTC))
        if controller.on_plan is not None:
            controller.on_plan(context, obj, plan)
        if not await _create_children(context, plan):
            continue
        try:
            await _carry_out(context, controller, obj, plan)
        except Conflict:
            # Someone else wrote the object since it was read: build again on its new state.
            fresh = await context.kube.get(obj["apiVersion"], controller.kind, *key)
            if fresh is None:
                return None
            cache.put(fresh)
            continue
        if controller.settle is not None:
            await controller.settle(context, cache.get(key) or obj)
        return plan.requeue_after
    raise RuntimeError(f"{controller.kind} {key[0]}/{key[1]}: children kept colliding")


async def _create_children(context: Context, plan: Plan) -> bool:
    """Create the plan's children; False when one existed already or was refused (then build
    again: the builder sees the refusal in `context.refusals` and must not plan it again)."""
    for child in plan.children:
        try:
            existing, created = await context.kube.create(child)
        except Refused as refusal:
            context.refusals[key_of(child)] = refusal.message
            return False
        context.cache(child["kind"]).put(existing)
        queue = context.queues.get(child["kind"])
        if queue is not None:
            # Its watch event will be no news to the cache: a child with a reconcile of its
            # own (a ModelVersion) is reconciled from here.
            queue.trigger(key_of(existing))
        if not created:
            return False
    return True


async def _apply_children(context: Context, plan: Plan) -> None:
    """Apply what differs from the plan's children, delete those that must go."""
    for manifest in plan.applied:
        context.cache(manifest["kind"]).put(await context.kube.apply(manifest))
    for api_version, kind, namespace, name in plan.deleted:
        await context.kube.delete(api_version, kind, namespace, name)
        context.cache(kind).forget(
            {"kind": kind, "metadata": {"namespace": namespace, "name": name}}
        )


async def _carry_out(
    context: Context, controller: Controller[ObservedT], obj: dict[str, Any], plan: Plan
) -> None:
    cache = context.cache(controller.kind)
    await _apply_children(context, plan)
    if plan.finalizers is not None:
        obj = await context.kube.set_finalizers(obj, plan.finalizers)
        if obj["metadata"].get("deletionTimestamp") and not plan.finalizers:
            return  # the last finalizer went: the object is gone
        cache.put(obj)
    old_status = obj.get("status") or {}
    if plan.status != old_status:
        updated = await context.kube.patch_status(obj, plan.status)
        cache.put(updated)
        if controller.on_status is not None:
            controller.on_status(context, updated, old_status)
    if plan.cleared_annotations:
        await context.kube.patch_annotations(obj, dict.fromkeys(plan.cleared_annotations))
    for record in plan.events:
        await context.kube.post_event(obj, record)
