"""InferenceService: which version serves, the canary rollout, and the serving children.

The build resolves the version the spec asks for (pinned, or the newest Ready one not rolled
back), then moves the rollout one decision forward: a first version is deployed as stable;
a new one runs as a canary through the steps, judged by `rollout.decide` on the figures the
controller read, until it is promoted (the stable Deployment takes the new version, then the
canary goes) or rolled back (the canary goes and the version joins failedVersions).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from gyre_operator.api import InferenceService, ModelVersion, to_wire
from gyre_operator.api.common import (
    format_timestamp,
    get_condition,
    parse_duration,
    set_condition,
)
from gyre_operator.api.inference import (
    AnalysisStatus,
    FailedVersion,
    InferenceServicePhase,
    InferenceServiceStatus,
    RoutingType,
    TrafficFigures,
)
from gyre_operator.api.modelversion import ModelVersionPhase
from gyre_operator.builders.plan import NORMAL, WARNING, EventRecord, Plan
from gyre_operator.builders.rollout import Action, Decision, RolloutState, decide
from gyre_operator.builders.serving import (
    Side,
    Track,
    build_deployment,
    build_route,
    build_services,
    covers,
    deployment_name,
    deployment_version,
    effective_weight,
    ready_pods,
    rolled_out,
    split_replicas,
)
from gyre_operator.builders.status import generation_of, with_ready
from gyre_operator.config import OperatorConfig

ACTION_ANNOTATION = "gyre.dev/rollout-action"
PROGRESSING = "RolloutProgressing"
MAX_FAILED_VERSIONS = 100


@dataclass(frozen=True)
class Reading:
    """Figures of the interval the controller just read (None: that side had no pods)."""

    canary: TrafficFigures | None
    stable: TrafficFigures | None


@dataclass(frozen=True)
class ServingObserved:
    """What the InferenceService's reconcile read: versions of its model, its children."""

    versions: tuple[dict[str, Any], ...] = ()
    deployments: dict[Track, dict[str, Any]] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    route: dict[str, Any] | None = None
    reading: Reading | None = None
    # Why the pods of a side are not ready (a waiting reason, a runtime's termination message)
    pod_problems: dict[Track, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """The version the spec asks to serve, or why there is none yet."""

    version: ModelVersion | None
    reason: str = ""
    message: str = ""


@dataclass
class _Build:
    """The state of one build as it goes: status, events, desired sides."""

    obj: dict[str, Any]
    isvc: InferenceService
    observed: ServingObserved
    now: datetime
    status: InferenceServiceStatus
    registered: dict[int, ModelVersion]  # every readable version of the model
    versions: dict[int, ModelVersion]  # the Ready ones
    events: list[EventRecord] = field(default_factory=list)
    sides: list[Side] = field(default_factory=list)
    untouched: set[Track] = field(default_factory=set)
    rollout_result: str | None = None


def action_of(obj: dict[str, Any]) -> str | None:
    """The manual rollout action an annotation asks for (`gyre rollout promote|abort|retry`)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ACTION_ANNOTATION)
    return str(value).strip() if value else None


def model_versions(observed: ServingObserved, model: str) -> dict[int, ModelVersion]:
    """The ModelVersions of the model, whatever their phase, by version number."""
    found: dict[int, ModelVersion] = {}
    for raw in observed.versions:
        try:
            version = ModelVersion.model_validate(raw)
        except ValueError:
            continue  # a ModelVersion the API server took but Gyre cannot read serves nothing
        if version.spec.model == model:
            found[version.spec.version] = version
    return found


def _ready(versions: dict[int, ModelVersion]) -> dict[int, ModelVersion]:
    return {
        number: version
        for number, version in versions.items()
        if version.status is not None and version.status.phase == ModelVersionPhase.READY
    }


def resolve_target(
    isvc: InferenceService, versions: dict[int, ModelVersion], failed: set[int]
) -> Target:
    """The version to serve: the pinned one, or the newest Ready one; never one rolled back."""
    spec = isvc.spec
    if spec.model_version is not None:
        pinned = versions.get(spec.model_version)
        if pinned is None:
            return Target(
                None, "ModelVersionNotReady",
                f"version {spec.model_version} of model {spec.model} is not a Ready ModelVersion",
            )  # fmt: skip
        if spec.model_version in failed:  # pinned or not, never rolled out again by itself
            return Target(
                None, "VersionRolledBack",
                f"version {spec.model_version} of model {spec.model} was rolled back; "
                "`gyre rollout retry` rolls it out again",
            )  # fmt: skip
        return Target(pinned)
    candidates = [v for n, v in versions.items() if n not in failed]
    if not candidates:
        rolled_back = " (the Ready ones were rolled back)" if versions else ""
        return Target(
            None, "NoReadyVersion", f"model {spec.model} has no Ready ModelVersion{rolled_back}"
        )
    return Target(max(candidates, key=lambda v: v.spec.version))


def services_serving(services: list[dict[str, Any]], version: int) -> list[str]:
    """The names of the InferenceServices whose stable or canary side serves a version
    (what its ModelVersion's status.servedBy lists), sorted."""
    return sorted(
        service["metadata"]["name"]
        for service in services
        if version
        in ((service.get("status") or {}).get(k) for k in ("stableVersion", "canaryVersion"))
    )


def rollout_result(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """How a rollout ended between two statuses: RolledBack (a version joined
    failedVersions), Promoted (the canary's version became stable), or None."""
    if len(new.get("failedVersions") or []) > len(old.get("failedVersions") or []):
        return "RolledBack"
    if old.get("canaryVersion") and new.get("stableVersion") == old.get("canaryVersion"):
        return "Promoted"
    return None


def analysis_due(isvc: InferenceService, canary_ready_pods: int, now: datetime) -> bool:
    """Whether the canary's figures are to be read now: a step is running, the canary has a
    ready pod, and an analysis interval passed since the last reading."""
    status = isvc.status or InferenceServiceStatus()
    if (
        status.canary_version is None
        or status.current_step is None
        or status.current_step >= len(isvc.spec.rollout.steps)
        or canary_ready_pods == 0
    ):
        return False
    last = _parse_time(status.analysis.last_time if status.analysis else None)
    interval = parse_duration(isvc.spec.rollout.analysis.interval)
    return last is None or now - last >= interval


def build_inferenceservice(
    obj: dict[str, Any], observed: ServingObserved, config: OperatorConfig, now: datetime
) -> Plan:
    """The plan for an InferenceService: its serving children, rollout step and status."""
    isvc = InferenceService.model_validate(obj)
    old = isvc.status or InferenceServiceStatus()
    registered = model_versions(observed, isvc.spec.model)
    build = _Build(
        obj=obj, isvc=isvc, observed=observed, now=now, status=old.model_copy(deep=True),
        registered=registered, versions=_ready(registered),
    )  # fmt: skip
    action = action_of(obj)
    if action is not None:
        _retry(build, action)
    failed = {f.version for f in build.status.failed_versions}
    target = resolve_target(isvc, build.versions, failed)
    _advance(build, target, action)
    build.status.observed_generation = generation_of(obj)
    build.status.url = _url(obj)
    _conditions(build, target)
    applied, deleted = _children(build, config)
    requeue = _requeue(build)
    return Plan(
        status=to_wire(build.status),
        events=tuple(build.events),
        applied=tuple(applied),
        deleted=tuple(deleted),
        requeue_after=requeue,
        cleared_annotations=(ACTION_ANNOTATION,) if action is not None else (),
    )


def _retry(build: _Build, action: str) -> None:
    """`retry` (the newest rolled-back version) or `retry=N`: roll it out again."""
    verb, _, argument = action.partition("=")
    failed = build.status.failed_versions
    if verb != "retry" or not failed:
        return
    chosen = int(argument) if argument.isdigit() else failed[-1].version
    if any(f.version == chosen for f in failed):
        build.status.failed_versions = [f for f in failed if f.version != chosen]
        build.events.append(
            EventRecord(NORMAL, "RetryRequested", f"version {chosen} may be rolled out again")
        )


def _advance(build: _Build, target: Target, action: str | None) -> None:
    """Move the rollout one decision forward."""
    status = build.status
    stable = build.observed.deployments.get(Track.STABLE)
    if status.stable_version is None and stable is not None:
        status.stable_version = deployment_version(stable)  # a status lost, not the service
    wanted = target.version.spec.version if target.version is not None else None
    if status.canary_version is not None and status.canary_version != wanted:
        build.events.append(
            EventRecord(
                NORMAL, "RolloutCancelled",
                f"version {status.canary_version} is no longer the version to serve",
            )
        )  # fmt: skip
        _clear_canary(status)
    if target.version is None:
        _keep_stable(build)
        return
    if status.stable_version is None or (
        status.canary_version is None and not _available(build, Track.STABLE)
    ):
        _deploy_stable(build, target.version)
        return
    if wanted == status.stable_version:
        _keep_stable(build)
        return
    if status.canary_version != wanted:
        _start_canary(build, target.version.spec.version, "RolloutStarted")
    elif generation_of(build.obj) != status.observed_generation:
        _start_canary(build, target.version.spec.version, "RolloutRestarted")
    _run_canary(build, action)


def _available(build: _Build, track: Track) -> bool:
    return ready_pods(build.observed.deployments.get(track)) > 0


def _deploy_stable(build: _Build, version: ModelVersion) -> None:
    """No version serves yet (or none serves well): the target becomes stable directly."""
    status = build.status
    number = version.spec.version
    if status.stable_version != number:
        build.events.append(
            EventRecord(NORMAL, "Deploying", f"deploying version {number} as the stable version")
        )
    status.stable_version = number
    build.sides.append(Side(Track.STABLE, version, build.isvc.spec.runtime.replicas))
    _clear_canary(status)


def _keep_stable(build: _Build) -> None:
    """Serve the stable version on all replicas, if there is one."""
    number = build.status.stable_version
    # Ready or not: a stable version keeps serving when its ModelVersion is no longer Ready.
    version = build.registered.get(number) if number is not None else None
    if version is not None:
        build.sides.append(Side(Track.STABLE, version, build.isvc.spec.runtime.replicas))
    elif number is not None:
        build.untouched.add(Track.STABLE)  # its ModelVersion is gone: leave what runs alone


def _start_canary(build: _Build, number: int, reason: str) -> None:
    status = build.status
    steps = build.isvc.spec.rollout.steps
    status.canary_version = number
    status.current_step = 0
    status.step_started_at = format_timestamp(build.now)
    status.analysis = AnalysisStatus()
    first = f"step 1 of {len(steps)} at weight {steps[0].weight}%" if steps else "no steps"
    build.events.append(
        EventRecord(
            NORMAL, reason,
            f"rolling version {number} out as a canary beside version {status.stable_version}: "
            f"{first}",
        )
    )  # fmt: skip


def _run_canary(build: _Build, action: str | None) -> None:
    """One decision of the running canary, then the sides it asks for."""
    status = build.status
    spec = build.isvc.spec
    steps = spec.rollout.steps
    assert status.canary_version is not None and status.current_step is not None
    if status.current_step < len(steps):
        decision = _decision(build, action)
        _apply_decision(build, decision)
    if status.canary_version is None:
        _keep_stable(build)
        return
    canary = build.registered.get(status.canary_version)
    assert canary is not None  # the target version, found among the Ready ones
    total = spec.runtime.replicas
    if status.current_step is not None and status.current_step >= len(steps):
        _promote(build, canary)
        return
    weight = steps[status.current_step or 0].weight
    stable_pods, canary_pods = split_replicas(total, weight, spec.traffic_routing.type)
    # The stable side gives up pods only once the canary's are ready: capacity never drops.
    canary_ready = ready_pods(build.observed.deployments.get(Track.CANARY)) >= canary_pods
    _keep_stable_at(build, stable_pods if canary_ready else max(stable_pods, total))
    build.sides.append(Side(Track.CANARY, canary, canary_pods))
    status.canary_weight = effective_weight(
        stable_pods, canary_pods, weight, spec.traffic_routing.type
    )


def _keep_stable_at(build: _Build, replicas: int) -> None:
    _keep_stable(build)
    build.sides = [
        replace(s, replicas=replicas) if s.track is Track.STABLE else s for s in build.sides
    ]


def _decision(build: _Build, action: str | None) -> Decision:
    status = build.status
    analysis = status.analysis or AnalysisStatus()
    steps = build.isvc.spec.rollout.steps
    step = status.current_step or 0
    if action == "abort":
        return Decision(Action.ROLLBACK, "Aborted", "aborted by hand (gyre rollout abort)")
    if action == "promote-full":
        return Decision(
            Action.PROMOTE, "Promoting", "promoted by hand (gyre rollout promote --full)"
        )
    if action == "promote":
        if step + 1 >= len(steps):
            return Decision(Action.PROMOTE, "Promoting", "promoted by hand (gyre rollout promote)")
        return Decision(
            Action.ADVANCE, "StepSkipped", f"step {step + 1} skipped by hand (gyre rollout promote)"
        )
    started = _parse_time(status.step_started_at) or build.now
    canary = build.observed.deployments.get(Track.CANARY)
    state = RolloutState(
        step=step, step_started_at=started, failures=analysis.failures, passes=analysis.passes,
        canary_ready=rolled_out(canary, _wanted_canary_pods(build)),
    )  # fmt: skip
    reading = build.observed.reading
    figures = reading.canary if reading is not None else None
    if reading is not None:
        analysis.last_time = format_timestamp(build.now)
        analysis.canary = reading.canary
        analysis.stable = reading.stable
    decision = decide(build.isvc.spec.rollout, state, figures, build.now)
    if decision.reason == "CanaryNotReady" and Track.CANARY in build.observed.pod_problems:
        decision = replace(
            decision, message=f"{decision.message}: {build.observed.pod_problems[Track.CANARY]}"
        )
    if reading is not None or decision.action is not Action.WAIT:
        analysis.last_result = f"{decision.action.value}: {decision.message}"
    status.analysis = analysis
    return decision


def _wanted_canary_pods(build: _Build) -> int:
    spec = build.isvc.spec
    step = build.status.current_step or 0
    weight = spec.rollout.steps[step].weight
    return split_replicas(spec.runtime.replicas, weight, spec.traffic_routing.type)[1]


def _apply_decision(build: _Build, decision: Decision) -> None:
    status = build.status
    analysis = status.analysis or AnalysisStatus()
    steps = build.isvc.spec.rollout.steps
    step = status.current_step or 0
    if decision.action is Action.PASS:
        analysis.passes += 1
    elif decision.action is Action.FAIL:
        analysis.failures += 1
        build.events.append(EventRecord(WARNING, "AnalysisFailed", decision.message))
    elif decision.action is Action.ADVANCE:
        status.current_step = step + 1
        status.step_started_at = format_timestamp(build.now)
        analysis.passes = 0
        build.events.append(
            EventRecord(
                NORMAL, decision.reason, f"{decision.message}; step {step + 2} of {len(steps)}"
            )
        )
    elif decision.action is Action.PROMOTE:
        status.current_step = len(steps)
        status.step_started_at = format_timestamp(build.now)
        build.events.append(EventRecord(NORMAL, "Promoting", decision.message))
    elif decision.action is Action.ROLLBACK:
        if decision.reason == "AnalysisFailed":
            analysis.failures += 1
        _roll_back(build, decision)
        return
    status.analysis = analysis


def _roll_back(build: _Build, decision: Decision) -> None:
    status = build.status
    number = status.canary_version
    assert number is not None
    failed = [f for f in status.failed_versions if f.version != number]
    failed.append(
        FailedVersion(
            version=number, reason=decision.reason, message=decision.message[:1024],
            time=format_timestamp(build.now),
        )
    )  # fmt: skip
    status.failed_versions = failed[-MAX_FAILED_VERSIONS:]
    build.events.append(
        EventRecord(
            WARNING, "RolledBack",
            f"version {number} rolled back ({decision.reason}): {decision.message}; "
            f"version {status.stable_version} keeps serving",
        )
    )  # fmt: skip
    build.rollout_result = "RolledBack"
    _clear_canary(status)


def _promote(build: _Build, canary: ModelVersion) -> None:
    """The stable Deployment takes the canary's version; once it runs it fully, the canary
    goes. Until then both serve, so no request meets a missing backend."""
    status = build.status
    total = build.isvc.spec.runtime.replicas
    stable = build.observed.deployments.get(Track.STABLE)
    build.sides.append(Side(Track.STABLE, canary, total))
    number = canary.spec.version
    if deployment_version(stable) == number and rolled_out(stable, total):
        previous = status.stable_version
        status.stable_version = number
        _clear_canary(status)
        build.rollout_result = "Promoted"
        build.events.append(
            EventRecord(
                NORMAL, "Promoted", f"version {number} promoted; version {previous} retired"
            )
        )
        return
    running = build.observed.deployments.get(Track.CANARY)
    if running is not None:
        build.sides.append(Side(Track.CANARY, canary, int(running["spec"].get("replicas", 1))))


def _clear_canary(status: InferenceServiceStatus) -> None:
    status.canary_version = None
    status.canary_weight = 0
    status.current_step = None
    status.step_started_at = None


def _conditions(build: _Build, target: Target) -> None:
    """Ready (the stable version serves), RolloutProgressing, and the phase."""
    status = build.status
    generation = generation_of(build.obj)
    stable = build.observed.deployments.get(Track.STABLE)
    total = build.isvc.spec.runtime.replicas
    if status.stable_version is None:
        ready, reason, message = False, target.reason or "Deploying", target.message
    elif ready_pods(stable) == 0:
        problem = build.observed.pod_problems.get(Track.STABLE)
        ready, reason = False, "PodsNotReady"
        message = f"no pod of version {status.stable_version} is ready"
        message += f": {problem}" if problem else ""
    else:
        ready, reason = True, "Serving"
        message = f"version {status.stable_version} serves on {ready_pods(stable)} of {total} pods"
    status.conditions = with_ready(
        status.conditions, ready, reason, message, generation=generation, now=build.now
    )
    progressing, reason, message = _progress(build)
    if progressing or get_condition(status.conditions, PROGRESSING) is not None:
        status.conditions = set_condition(
            status.conditions, PROGRESSING, progressing, reason, message,
            observed_generation=generation, now=build.now,
        )  # fmt: skip
    status.phase = _phase(build, ready)


def _progress(build: _Build) -> tuple[bool, str, str]:
    """The RolloutProgressing condition: True while a canary runs, else how the last ended."""
    status = build.status
    steps = build.isvc.spec.rollout.steps
    if status.canary_version is not None:
        step = status.current_step or 0
        if step >= len(steps):
            return (
                True,
                "Promoting",
                (f"version {status.canary_version} replaces version {status.stable_version}"),
            )
        return (
            True,
            "Progressing",
            (
                f"version {status.canary_version} at step {step + 1} of {len(steps)}, "
                f"weight {status.canary_weight}%"
            ),
        )
    last = _progress_reason(status)
    result = build.rollout_result or (last if last != "Progressing" else None) or "Idle"
    if result == "Promoted":
        return False, result, f"version {status.stable_version} was promoted"
    if result == "RolledBack" and status.failed_versions:
        failed = status.failed_versions[-1]
        return (
            False,
            result,
            (
                f"version {failed.version} was rolled back ({failed.reason}): "
                f"{failed.message or ''}"
            ).strip(),
        )
    return False, "Idle", "no rollout is running"


def _phase(build: _Build, ready: bool) -> InferenceServicePhase:
    status = build.status
    if status.canary_version is not None:
        return InferenceServicePhase.PROGRESSING
    if status.stable_version is None:
        return InferenceServicePhase.PENDING
    if not ready:
        if build.observed.pod_problems.get(Track.STABLE):
            return InferenceServicePhase.FAILED
        return InferenceServicePhase.PROGRESSING
    # A rollback stays visible until the next rollout starts.
    if _progress_reason(status) == "RolledBack":
        return InferenceServicePhase.ROLLED_BACK
    return InferenceServicePhase.READY


def _progress_reason(status: InferenceServiceStatus) -> str | None:
    found = get_condition(status.conditions, PROGRESSING)
    return found.reason if found is not None else None


def _children(
    build: _Build, config: OperatorConfig
) -> tuple[list[dict[str, Any]], list[tuple[str, str, str, str]]]:
    """Objects to apply (those not already as desired) and children to delete."""
    obj, isvc, observed = build.obj, build.isvc, build.observed
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    desired: list[dict[str, Any]] = [
        build_deployment(obj, isvc, side, config) for side in build.sides
    ]
    current: dict[str, dict[str, Any] | None] = {
        deployment_name(name, track): observed.deployments.get(track) for track in Track
    }
    desired += build_services(obj, isvc)
    current.update(observed.services)
    if isvc.spec.traffic_routing.type == RoutingType.GATEWAY_API:
        route = build_route(obj, isvc, build.status.canary_weight)
        desired.append(route)
        current[route["metadata"]["name"] + "/route"] = observed.route
    applied = [d for d in desired if not covers(current.get(_key(d)), d)]
    wanted = {d["metadata"]["name"] for d in desired if d["kind"] == "Deployment"}
    deleted = [
        ("apps/v1", "Deployment", namespace, deployment_name(name, track))
        for track in Track
        if observed.deployments.get(track) is not None
        and deployment_name(name, track) not in wanted
        and track not in build.untouched
    ]
    return applied, deleted


def _key(manifest: dict[str, Any]) -> str:
    name = str(manifest["metadata"]["name"])
    return f"{name}/route" if manifest["kind"] == "HTTPRoute" else name


def _requeue(build: _Build) -> float | None:
    """While a canary runs, look again at the next analysis interval."""
    if build.status.canary_version is None:
        return None
    return parse_duration(build.isvc.spec.rollout.analysis.interval).total_seconds()


def _url(obj: dict[str, Any]) -> str:
    metadata = obj["metadata"]
    return f"http://{metadata['name']}.{metadata['namespace']}.svc.cluster.local"


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
