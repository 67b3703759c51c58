"""InferenceService controller: serving Deployments, Services, the canary and its analysis."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from gyre_operator.api import GROUP, VERSION, InferenceService, ModelVersion
from gyre_operator.api.inference import InferenceServiceStatus, RoutingType
from gyre_operator.builders.inferenceservice import (
    Reading,
    ServingObserved,
    analysis_due,
    build_inferenceservice,
    rollout_result,
    services_serving,
)
from gyre_operator.builders.naming import MANAGED_BY
from gyre_operator.builders.serving import (
    GATEWAY_API_VERSION,
    SERVICE_LABEL,
    TRACK_LABEL,
    Track,
    build_services,
    deployment_name,
    pod_problem,
    ready_pods,
)
from gyre_operator.controllers.cache import key_of
from gyre_operator.controllers.context import Context
from gyre_operator.controllers.driftmonitor import wake_monitors
from gyre_operator.controllers.figures import read_pod_figures, read_prometheus_figures
from gyre_operator.controllers.reconcile import Controller
from gyre_operator.controllers.watch import track, trigger, trigger_owner
from gyre_operator.metrics import ANALYSIS_OUTCOMES, CANARY_WEIGHT, ROLLOUTS

KIND = InferenceService.info.kind
log = logging.getLogger(__name__)


async def observe(context: Context, obj: dict[str, Any]) -> ServingObserved:
    """The model's versions, the children, and the canary's figures when an interval is due."""
    isvc = InferenceService.model_validate(obj)
    namespace, name = key_of(obj)
    versions = tuple(context.cache(ModelVersion.info.kind).group((namespace, isvc.spec.model)))
    deployments = {
        side: found
        for side in Track
        if (found := context.cache("Deployment").get((namespace, deployment_name(name, side))))
        is not None
    }
    services = {
        wanted["metadata"]["name"]: found
        for wanted in build_services(obj, isvc)
        if (found := context.cache("Service").get((namespace, wanted["metadata"]["name"])))
        is not None
    }
    route = None
    if isvc.spec.traffic_routing.type == RoutingType.GATEWAY_API:
        route = await context.kube.get(GATEWAY_API_VERSION, "HTTPRoute", namespace, name)
    problems: dict[Track, str] = {}
    for side, deployment in deployments.items():
        if ready_pods(deployment) < int(deployment["spec"].get("replicas", 0)):
            pods = await context.kube.list_objects(
                "v1", "Pod", namespace, f"{SERVICE_LABEL}={name},{TRACK_LABEL}={side.value}"
            )
            problem = pod_problem(pods)
            if problem:
                problems[side] = problem
    reading = await _reading(context, obj, isvc, deployments)
    return ServingObserved(
        versions=versions, deployments=deployments, services=services, route=route,
        reading=reading, pod_problems=problems,
    )  # fmt: skip


async def _reading(
    context: Context,
    obj: dict[str, Any],
    isvc: InferenceService,
    deployments: dict[Track, dict[str, Any]],
) -> Reading | None:
    """The figures of the interval since the last reading, when a canary runs and one is due."""
    if not analysis_due(isvc, ready_pods(deployments.get(Track.CANARY)), datetime.now(UTC)):
        return None
    status = isvc.status or InferenceServiceStatus()
    analysis = isvc.spec.rollout.analysis
    namespace, name = key_of(obj)
    versions = {Track.CANARY: status.canary_version, Track.STABLE: status.stable_version}
    if analysis.prometheus is not None:
        return await read_prometheus_figures(
            analysis.prometheus.url, namespace, isvc.spec.model, versions, analysis.interval
        )
    samples = context.pod_samples.setdefault((namespace, name), {})
    return await read_pod_figures(
        context.kube, namespace, name, isvc.spec.model, isvc.spec.runtime.port, versions, samples
    )


def account(context: Context, obj: dict[str, Any], old: dict[str, Any]) -> None:
    """Metrics of what the status write just recorded: weight, analysis outcome, results."""
    namespace, name = key_of(obj)
    new = obj.get("status") or {}
    CANARY_WEIGHT.labels(namespace=namespace, name=name).set(new.get("canaryWeight", 0))
    analysis, before = new.get("analysis") or {}, old.get("analysis") or {}
    last_result = str(analysis.get("lastResult") or "")
    read = analysis.get("lastTime") and analysis.get("lastTime") != before.get("lastTime")
    if read and last_result:
        outcome = last_result.split(":", 1)[0]
        ANALYSIS_OUTCOMES.labels(namespace=namespace, name=name, outcome=outcome).inc()
    result = rollout_result(old, new)
    if result is not None:
        ROLLOUTS.labels(result=result).inc()


async def settle_served_by(context: Context, obj: dict[str, Any]) -> None:
    """Keep status.servedBy of the model's versions equal to the services serving them."""
    namespace, _ = key_of(obj)
    model = str(obj["spec"]["model"])
    services = context.cache(KIND).group((namespace, model))
    for version in context.cache(ModelVersion.info.kind).group((namespace, model)):
        wanted = services_serving(services, version["spec"]["version"])
        if sorted((version.get("status") or {}).get("servedBy") or []) != wanted:
            updated = await context.kube.patch_served_by(version, wanted)
            context.cache(ModelVersion.info.kind).put(updated)


def forget(context: Context, obj: dict[str, Any]) -> None:
    """Drop what the controller remembers of a deleted InferenceService."""
    namespace, name = key_of(obj)
    context.pod_samples.pop((namespace, name), None)
    with contextlib.suppress(KeyError):  # never reconciled, so never measured
        CANARY_WEIGHT.remove(namespace, name)


def on_status(context: Context, obj: dict[str, Any], old: dict[str, Any]) -> None:
    """Count what the status recorded; the service's monitors see what it serves now."""
    account(context, obj, old)
    wake_monitors(context, obj)


CONTROLLER: Controller[ServingObserved] = Controller(
    KIND, observe, build_inferenceservice, on_status=on_status, settle=settle_served_by
)


@kopf.on.event(GROUP, VERSION, InferenceService.info.plural, id="inferenceservice")
async def inferenceservice_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """An InferenceService changed: reconcile it; one deleted releases its versions."""
    context: Context = memo.context
    if not track(context, KIND, event.get("type"), body):
        return
    wake_monitors(context, body)
    if event.get("type") == "DELETED":
        forget(context, dict(body))
        await settle_served_by(context, dict(body))
        return
    trigger(context, KIND, body)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED_BY, id="child-deployment")
async def deployment_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """A serving Deployment changed (pods became ready, a rollout moved): tell its owner."""
    context: Context = memo.context
    if track(context, "Deployment", event.get("type"), body):
        trigger_owner(context, body)


@kopf.on.event("", "v1", "services", labels=MANAGED_BY, id="child-service")
async def service_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A Service Gyre made changed or went: its owner puts it back as it should be."""
    context: Context = memo.context
    if track(context, "Service", event.get("type"), body):
        trigger_owner(context, body)


def serving_model(context: Context, version: Mapping[str, Any]) -> None:
    """A version of a model changed: the services of that model may serve another now."""
    namespace, _ = key_of(version)
    for service in context.cache(KIND).group((namespace, str(version["spec"]["model"]))):
        trigger(context, KIND, service)
