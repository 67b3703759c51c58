"""InferenceService builder, driven the way the controller drives it.

A small in-memory cluster applies each plan (status written back, manifests stored with the
API server's defaults, Deployments rolled out at once unless held or broken, children
deleted, consumed annotations removed) and the next build reads it again.

The rollout under test: 4 replicas; step 1 at 25% for 1m, step 2 at 50% for 1m; an interval
every 30s judged on at least 20 requests, 5% errors and a p99 of 200 ms; one failed interval
tolerated; a step that cannot be judged within 5m rolls back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from builders_fixtures import (
    CONFIG,
    NOW,
    condition,
    inferenceservice_obj,
    servable_version,
    with_server_defaults,
)

from gyre_operator.api import InferenceService
from gyre_operator.api.common import format_timestamp
from gyre_operator.api.inference import TrafficFigures
from gyre_operator.builders.inferenceservice import (
    ACTION_ANNOTATION,
    Reading,
    ServingObserved,
    analysis_due,
    build_inferenceservice,
    rollout_result,
    services_serving,
)
from gyre_operator.builders.plan import NORMAL, WARNING, EventRecord, Plan
from gyre_operator.builders.serving import TRACK_LABEL, Track, covers, deployment_version

ANALYSIS: dict[str, Any] = {
    "interval": "30s",
    "minRequests": 20,
    "maxErrorRate": 0.05,
    "maxLatencyP99Ms": 200,
    "failureLimit": 1,
    "stepDeadline": "5m",
}
ROLLOUT: dict[str, Any] = {
    "steps": [{"weight": 25, "pause": "1m"}, {"weight": 50, "pause": "1m"}],
    "analysis": ANALYSIS,
}
GATEWAY_ROUTING = {"type": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "edge"}]}}
STABLE_FIGURES = TrafficFigures(requests=300, error_rate=0.0, latency_p99_ms=40.0)
GOOD = Reading(TrafficFigures(requests=100, error_rate=0.01, latency_p99_ms=50.0), STABLE_FIGURES)
ERRORS = Reading(TrafficFigures(requests=100, error_rate=0.2, latency_p99_ms=50.0), STABLE_FIGURES)
SLOW = Reading(TrafficFigures(requests=100, error_rate=0.0, latency_p99_ms=900.0), STABLE_FIGURES)
QUIET = Reading(TrafficFigures(requests=5, error_rate=0.0, latency_p99_ms=50.0), STABLE_FIGURES)
CRASH = (
    "pod iris-svc-canary-5f7d-q8 container server: CrashLoopBackOff: DigestMismatch: "
    "sha256 of the model differs"
)
STABLE, CANARY = Track.STABLE, Track.CANARY
CANARY_KEY = ("apps/v1", "Deployment", "ml", "iris-svc-canary")


@dataclass
class Cluster:
    """What the controller would observe, kept up to date by applying every plan."""

    obj: dict[str, Any]
    versions: list[dict[str, Any]]
    now: datetime = NOW
    deployments: dict[Track, dict[str, Any]] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    route: dict[str, Any] | None = None
    held: set[Track] = field(default_factory=set)  # applied, not yet rolled out
    broken: set[Track] = field(default_factory=set)  # rolled out, no pod ready

    def observed(
        self, reading: Reading | None = None, problems: dict[Track, str] | None = None
    ) -> ServingObserved:
        return ServingObserved(
            versions=tuple(copy.deepcopy(self.versions)),
            deployments=copy.deepcopy(self.deployments),
            services=copy.deepcopy(self.services),
            route=copy.deepcopy(self.route),
            reading=reading,
            pod_problems=dict(problems or {}),
        )

    def build(
        self, reading: Reading | None = None, problems: dict[Track, str] | None = None
    ) -> Plan:
        """One build on what is observed now, applied to nothing."""
        before = copy.deepcopy(self.obj)
        plan = build_inferenceservice(self.obj, self.observed(reading, problems), CONFIG, self.now)
        assert self.obj == before, "the builder changed its input"
        return plan

    def reconcile(
        self,
        reading: Reading | None = None,
        *,
        after: float = 5,
        problems: dict[Track, str] | None = None,
    ) -> Plan:
        """`after` seconds later, one build, applied."""
        self.now += timedelta(seconds=after)
        plan = self.build(reading, problems)
        self.apply(plan)
        return plan

    def follow(self) -> Plan:
        """The reconcile the Deployment watch starts once the canary's pods are ready: the
        stable side gives up its pods only then; returns its plan."""
        plan = self.build()
        self.apply(plan)
        return plan

    def apply(self, plan: Plan) -> None:
        self.obj["status"] = copy.deepcopy(plan.status)
        annotations = self.obj["metadata"].get("annotations") or {}
        for key in plan.cleared_annotations:
            annotations.pop(key, None)
        for manifest in plan.applied:
            if manifest["kind"] == "Deployment":
                track = Track(manifest["metadata"]["labels"][TRACK_LABEL])
                old = self.deployments.get(track)
                generation = 1
                if old is not None:
                    changed = not covers(old["spec"], manifest["spec"])
                    generation = old["metadata"]["generation"] + int(changed)
                stored = with_server_defaults(manifest, generation)
                stored["status"] = copy.deepcopy(old["status"]) if old is not None else {}
                self.deployments[track] = stored
                self.settle(track)
            elif manifest["kind"] == "Service":
                self.services[manifest["metadata"]["name"]] = with_server_defaults(manifest)
            else:
                assert manifest["kind"] == "HTTPRoute"
                self.route = with_server_defaults(manifest)
        for api_version, kind, namespace, name in plan.deleted:
            assert (api_version, kind, namespace) == ("apps/v1", "Deployment", "ml")
            (track,) = [t for t, d in self.deployments.items() if d["metadata"]["name"] == name]
            del self.deployments[track]

    def settle(self, track: Track) -> None:
        """The Deployment controller's work: the current template runs, ready or not."""
        if track in self.held:
            return
        deployment = self.deployments[track]
        replicas = deployment["spec"]["replicas"]
        ready = 0 if track in self.broken else replicas
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }

    def release(self, track: Track) -> None:
        self.held.discard(track)
        self.settle(track)

    def pods(self) -> dict[Track, tuple[int, int | None]]:
        """(replicas, model version) of each serving Deployment."""
        return {
            track: (d["spec"]["replicas"], deployment_version(d))
            for track, d in self.deployments.items()
        }

    def assert_settled(self) -> None:
        """A build on the result of the last one changes no child."""
        plan = self.build()
        assert plan.applied == ()
        assert plan.deleted == ()


def isvc(**spec_fields: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"runtime": {"replicas": 4}, "rollout": ROLLOUT, **spec_fields}
    return inferenceservice_obj(**fields)


def serving(*numbers: int, **spec_fields: Any) -> Cluster:
    """A service whose first version (the lowest number) is deployed and ready."""
    cluster = Cluster(isvc(**spec_fields), [servable_version(n) for n in numbers or (1,)])
    cluster.reconcile()
    cluster.reconcile()
    assert cluster.obj["status"]["phase"] == "Ready"
    return cluster


def new_version(cluster: Cluster, number: int = 2) -> Plan:
    """A new Ready version: the canary starts, and once its pods are ready the stable side
    shrinks (the follow-up reconcile); returns the first plan."""
    cluster.versions.append(servable_version(number))
    plan = cluster.reconcile()
    cluster.follow()
    return plan


def reasons(plan: Plan) -> list[str]:
    return [e.reason for e in plan.events]


def names(plan: Plan) -> list[str]:
    return [f"{m['kind']}/{m['metadata']['name']}" for m in plan.applied]


def progressing(plan: Plan) -> tuple[str, str, str]:
    found = condition(plan.status, "RolloutProgressing")
    return found["status"], found["reason"], found["message"]


def ready(plan: Plan) -> tuple[str, str, str]:
    found = condition(plan.status)
    return found["status"], found["reason"], found["message"]


def at(seconds: float) -> str:
    return format_timestamp(NOW + timedelta(seconds=seconds))


def act(cluster: Cluster, action: str) -> None:
    cluster.obj["metadata"].setdefault("annotations", {})[ACTION_ANNOTATION] = action


# ---- which version ----


def test_first_version_is_deployed_as_stable_with_no_canary() -> None:
    cluster = Cluster(isvc(), [servable_version(1)])
    plan = cluster.reconcile(after=0)
    assert names(plan) == ["Deployment/iris-svc-stable", "Service/iris-svc"]
    assert cluster.pods() == {STABLE: (4, 1)}
    assert plan.events == (
        EventRecord(NORMAL, "Deploying", "deploying version 1 as the stable version"),
    )
    assert plan.deleted == ()
    assert plan.requeue_after is None
    assert plan.cleared_annotations == ()
    status = plan.status
    assert status["stableVersion"] == 1
    assert "canaryVersion" not in status
    assert status["canaryWeight"] == 0
    assert status["url"] == "http://iris-svc.ml.svc.cluster.local"
    assert status["observedGeneration"] == 1
    # The Deployment was just made: no pod is ready yet.
    assert status["phase"] == "Progressing"
    assert ready(plan) == ("False", "PodsNotReady", "no pod of version 1 is ready")
    with pytest.raises(KeyError):
        condition(status, "RolloutProgressing")

    plan = cluster.reconcile()
    assert plan.status["phase"] == "Ready"
    assert ready(plan) == ("True", "Serving", "version 1 serves on 4 of 4 pods")
    assert plan.events == ()
    assert plan.applied == ()
    cluster.assert_settled()


@pytest.mark.parametrize(
    ("versions", "failed", "expected"),
    [
        ([servable_version(1)], [], 1),
        ([servable_version(1), servable_version(3), servable_version(2)], [], 3),
        # Not Ready: never served.
        ([servable_version(1), servable_version(2, phase="Pending")], [], 1),
        ([servable_version(1), servable_version(2, phase="Failed")], [], 1),
        ([servable_version(1), servable_version(2, phase=None)], [], 1),
        # Another model's versions are not this model's.
        ([servable_version(1), servable_version(9, model="wine")], [], 1),
        # Rolled back: never again by itself.
        ([servable_version(1), servable_version(2), servable_version(3)], [3], 2),
        ([servable_version(1), servable_version(2), servable_version(3)], [2, 3], 1),
    ],
)
def test_track_latest_deploys_the_newest_ready_version_not_rolled_back(
    versions: list[dict[str, Any]], failed: list[int], expected: int
) -> None:
    status = {"failedVersions": [{"version": n, "reason": "AnalysisFailed"} for n in failed]}
    cluster = Cluster(isvc(status=status), versions)
    plan = cluster.reconcile()
    assert plan.status["stableVersion"] == expected
    assert cluster.pods() == {STABLE: (4, expected)}


def test_a_modelversion_gyre_cannot_read_is_skipped() -> None:
    unreadable = servable_version(5)
    unreadable["spec"]["artifact"]["sha256"] = "not-a-digest"
    cluster = Cluster(isvc(), [servable_version(1), unreadable])
    assert cluster.reconcile().status["stableVersion"] == 1


@pytest.mark.parametrize(
    ("versions", "failed", "message"),
    [
        ([], [], "model iris has no Ready ModelVersion"),
        ([servable_version(1, phase="Pending")], [], "model iris has no Ready ModelVersion"),
        (
            [servable_version(1), servable_version(2)],
            [1, 2],
            "model iris has no Ready ModelVersion (the Ready ones were rolled back)",
        ),
    ],
)
def test_track_latest_with_nothing_to_serve(
    versions: list[dict[str, Any]], failed: list[int], message: str
) -> None:
    status = {"failedVersions": [{"version": n, "reason": "AnalysisFailed"} for n in failed]}
    cluster = Cluster(isvc(status=status), versions)
    plan = cluster.reconcile()
    assert names(plan) == ["Service/iris-svc"]
    assert cluster.pods() == {}
    assert plan.status["phase"] == "Pending"
    assert ready(plan) == ("False", "NoReadyVersion", message)
    assert plan.events == ()


def test_pinned_version_is_served_even_when_newer_ones_are_ready() -> None:
    cluster = Cluster(isvc(modelVersion=2), [servable_version(n) for n in (1, 2, 3)])
    cluster.reconcile()
    assert cluster.pods() == {STABLE: (4, 2)}


@pytest.mark.parametrize(
    "versions",
    [
        [servable_version(1)],
        [servable_version(1), servable_version(5, phase="Pending")],
        [servable_version(1), servable_version(5, model="wine")],
    ],
)
def test_pinned_version_missing_is_not_ready(versions: list[dict[str, Any]]) -> None:
    cluster = Cluster(isvc(modelVersion=5), versions)
    plan = cluster.reconcile()
    assert plan.status["phase"] == "Pending"
    assert "stableVersion" not in plan.status
    assert ready(plan) == (
        "False",
        "ModelVersionNotReady",
        "version 5 of model iris is not a Ready ModelVersion",
    )
    assert cluster.pods() == {}
    # It becomes Ready later: it is deployed.
    cluster.versions = [servable_version(1), servable_version(5)]
    plan = cluster.reconcile()
    assert plan.status["stableVersion"] == 5
    assert cluster.pods() == {STABLE: (4, 5)}


def test_pinned_version_gone_keeps_the_stable_version_serving() -> None:
    cluster = serving(1, modelVersion=1)
    cluster.obj["spec"]["modelVersion"] = 5
    cluster.obj["metadata"]["generation"] = 2
    plan = cluster.reconcile()
    assert plan.deleted == ()
    assert cluster.pods() == {STABLE: (4, 1)}
    assert plan.status["stableVersion"] == 1


def test_stable_version_whose_modelversion_went_is_left_running() -> None:
    cluster = serving(1, 2, modelVersion=1)
    cluster.versions = [servable_version(2)]  # version 1's ModelVersion was deleted
    plan = cluster.reconcile()
    assert plan.applied == ()
    assert plan.deleted == ()
    assert cluster.pods() == {STABLE: (4, 1)}


def test_lost_status_is_recovered_from_the_stable_deployment() -> None:
    cluster = serving(1)
    del cluster.obj["status"]
    plan = cluster.reconcile()
    assert plan.status["stableVersion"] == 1
    assert plan.events == ()
    assert plan.applied == ()
    assert plan.status["phase"] == "Ready"


# ---- a canary runs, passes and is promoted ----


def test_new_version_starts_a_canary_beside_the_stable_one() -> None:
    cluster = serving(1)
    plan = new_version(cluster)
    assert plan.events == (
        EventRecord(
            NORMAL,
            "RolloutStarted",
            "rolling version 2 out as a canary beside version 1: step 1 of 2 at weight 25%",
        ),
    )
    # Replica routing: one pod of four serves the canary, three the stable version; the
    # stable side shrinks only once the canary's pod is ready (new_version's follow-up).
    assert names(plan) == ["Deployment/iris-svc-canary"]
    assert cluster.pods() == {STABLE: (3, 1), CANARY: (1, 2)}
    status = plan.status
    assert status["stableVersion"] == 1
    assert status["canaryVersion"] == 2
    assert status["currentStep"] == 0
    assert status["canaryWeight"] == 25
    assert status["stepStartedAt"] == at(15)
    assert status["analysis"] == {"failures": 0, "passes": 0}
    assert status["phase"] == "Progressing"
    assert progressing(plan) == ("True", "Progressing", "version 2 at step 1 of 2, weight 25%")
    assert ready(plan)[:2] == ("True", "Serving")
    assert plan.requeue_after == 30.0
    cluster.assert_settled()


def test_canary_waits_for_its_pods_and_for_the_first_interval() -> None:
    cluster = serving(1)
    cluster.held.add(CANARY)
    new_version(cluster)
    plan = cluster.reconcile(GOOD, after=30)  # the canary's pods are not up: no judgement
    assert plan.status["analysis"]["passes"] == 0
    assert plan.status["analysis"]["lastResult"] == "Wait: waiting for the canary's pods"
    cluster.release(CANARY)
    plan = cluster.reconcile()  # no reading is due yet
    assert plan.status["analysis"]["passes"] == 0
    assert plan.events == ()
    plan = cluster.reconcile(GOOD, after=20)  # 70s
    assert plan.status["analysis"]["passes"] == 1


def test_passing_readings_advance_the_steps_and_promote() -> None:
    cluster = serving(1)
    new_version(cluster)  # at 15s

    plan = cluster.reconcile(GOOD, after=30)  # 45s: within step 1's pause
    analysis = plan.status["analysis"]
    assert analysis["passes"] == 1
    assert analysis["lastTime"] == at(45)
    assert analysis["lastResult"] == "Pass: interval passed on 100 requests"
    assert analysis["canary"] == {"requests": 100, "errorRate": 0.01, "latencyP99Ms": 50.0}
    assert analysis["stable"] == {"requests": 300, "errorRate": 0.0, "latencyP99Ms": 40.0}
    assert plan.events == ()
    assert plan.applied == ()

    plan = cluster.reconcile(GOOD, after=30)  # 75s: step 1's pause is over
    assert plan.events == (
        EventRecord(
            NORMAL, "StepPassed", "step 1 of 2 passed: next step at weight 50%; step 2 of 2"
        ),
    )
    assert plan.status["currentStep"] == 1
    assert plan.status["stepStartedAt"] == at(75)
    assert plan.status["analysis"]["passes"] == 0
    assert plan.status["canaryWeight"] == 50
    cluster.follow()
    assert cluster.pods() == {STABLE: (2, 1), CANARY: (2, 2)}
    assert progressing(plan) == ("True", "Progressing", "version 2 at step 2 of 2, weight 50%")

    cluster.reconcile(GOOD, after=30)  # 105s: passed, pause running
    cluster.held.add(STABLE)  # the stable Deployment's rollout takes a while
    plan = cluster.reconcile(GOOD, after=30)  # 135s: the last step passed
    assert plan.events == (
        EventRecord(NORMAL, "Promoting", "the last step passed: promoting the canary"),
    )
    # The stable Deployment takes the new version on all its replicas; the canary stays.
    assert names(plan) == ["Deployment/iris-svc-stable"]
    assert cluster.pods() == {STABLE: (4, 2), CANARY: (2, 2)}
    assert plan.deleted == ()
    assert plan.status["stableVersion"] == 1
    assert plan.status["canaryVersion"] == 2
    assert plan.status["currentStep"] == 2
    assert plan.status["phase"] == "Progressing"
    assert progressing(plan) == ("True", "Promoting", "version 2 replaces version 1")

    plan = cluster.reconcile()  # still rolling out: both stay
    assert plan.applied == ()
    assert plan.deleted == ()
    assert plan.events == ()
    assert plan.status["canaryVersion"] == 2

    cluster.release(STABLE)
    plan = cluster.reconcile()
    assert plan.events == (
        EventRecord(NORMAL, "Promoted", "version 2 promoted; version 1 retired"),
    )
    assert plan.deleted == (CANARY_KEY,)
    assert plan.applied == ()
    assert cluster.pods() == {STABLE: (4, 2)}
    status = plan.status
    assert status["stableVersion"] == 2
    for gone in ("canaryVersion", "currentStep", "stepStartedAt"):
        assert gone not in status
    assert status["canaryWeight"] == 0
    assert status["failedVersions"] == []
    assert status["phase"] == "Ready"
    assert progressing(plan) == ("False", "Promoted", "version 2 was promoted")
    assert ready(plan) == ("True", "Serving", "version 2 serves on 4 of 4 pods")
    assert plan.requeue_after is None

    plan = cluster.reconcile()
    assert plan.events == ()
    assert progressing(plan)[:2] == ("False", "Promoted")
    cluster.assert_settled()


def test_inconclusive_intervals_wait_then_a_passed_step_goes_on() -> None:
    cluster = serving(1)
    new_version(cluster)  # 15s
    plan = cluster.reconcile(QUIET, after=30)
    assert plan.status["analysis"]["lastResult"] == (
        "Wait: 5 canary requests in the interval, fewer than 20: waiting"
    )
    assert plan.status["analysis"]["failures"] == 0
    cluster.reconcile(GOOD, after=30)  # 75s: the pause is over with this pass: next step
    assert cluster.obj["status"]["currentStep"] == 1
    cluster.reconcile(GOOD, after=30)  # 105s: passed, pause running
    plan = cluster.reconcile(QUIET, after=30)  # 135s: quiet, but the step already passed
    assert reasons(plan) == ["Promoting"]


def test_quiet_canary_rolls_back_at_the_step_deadline() -> None:
    cluster = serving(1)
    new_version(cluster)  # 15s
    for _ in range(9):  # until 285s
        plan = cluster.reconcile(QUIET, after=30)
        assert plan.status["canaryVersion"] == 2
    plan = cluster.reconcile(QUIET, after=30)  # 315s: 5 minutes into the step
    assert reasons(plan) == ["RolledBack"]
    (failed,) = plan.status["failedVersions"]
    assert failed["reason"] == "InsufficientTraffic"
    assert plan.deleted == (CANARY_KEY,)


def test_canary_never_ready_rolls_back_at_the_deadline_with_the_pod_problem() -> None:
    cluster = serving(1)
    cluster.broken.add(CANARY)
    new_version(cluster)  # 15s
    plan = cluster.reconcile(after=60, problems={CANARY: CRASH})
    assert plan.status["canaryVersion"] == 2
    plan = cluster.reconcile(after=240, problems={CANARY: CRASH})  # 315s
    assert plan.status["failedVersions"] == [
        {
            "version": 2,
            "reason": "CanaryNotReady",
            "message": f"the canary's pods were not ready within 5m: {CRASH}",
            "time": at(315),
        }
    ]
    assert plan.deleted == (CANARY_KEY,)
    assert plan.status["phase"] == "RolledBack"
    assert ready(plan)[0] == "True"


# ---- a canary fails and is rolled back ----


@pytest.mark.parametrize(
    ("reading", "problem"),
    [
        (ERRORS, "error rate 20.00% over the limit 5.00%"),
        (SLOW, "p99 latency 900.0 ms over the limit 200 ms"),
    ],
)
def test_failing_readings_roll_back_after_failure_limit_plus_one(
    reading: Reading, problem: str
) -> None:
    cluster = serving(1)
    new_version(cluster)  # 15s

    plan = cluster.reconcile(reading, after=30)  # one failure: tolerated
    first = f"{problem} (failed interval 1 of 1 tolerated)"
    assert plan.events == (EventRecord(WARNING, "AnalysisFailed", first),)
    assert plan.status["analysis"]["failures"] == 1
    assert plan.status["analysis"]["lastResult"] == f"Fail: {first}"
    assert plan.status["canaryVersion"] == 2
    assert plan.applied == ()

    plan = cluster.reconcile(reading, after=30)  # the second: rolled back
    message = f"{problem}; 2 failed intervals, limit 1"
    assert plan.events == (
        EventRecord(
            WARNING,
            "RolledBack",
            f"version 2 rolled back (AnalysisFailed): {message}; version 1 keeps serving",
        ),
    )
    status = plan.status
    assert status["failedVersions"] == [
        {"version": 2, "reason": "AnalysisFailed", "message": message, "time": at(75)}
    ]
    assert status["analysis"]["failures"] == 2
    for gone in ("canaryVersion", "currentStep", "stepStartedAt"):
        assert gone not in status
    assert status["canaryWeight"] == 0
    assert status["stableVersion"] == 1
    assert plan.deleted == (CANARY_KEY,)
    assert names(plan) == ["Deployment/iris-svc-stable"]
    assert cluster.pods() == {STABLE: (4, 1)}
    assert status["phase"] == "RolledBack"
    assert progressing(plan) == (
        "False",
        "RolledBack",
        f"version 2 was rolled back (AnalysisFailed): {message}",
    )
    assert ready(plan)[:2] == ("True", "Serving")
    assert plan.requeue_after is None

    # The rolled-back version is never started again by itself.
    for _ in range(3):
        plan = cluster.reconcile(after=60)
        assert plan.events == ()
        assert "canaryVersion" not in plan.status
        assert plan.status["phase"] == "RolledBack"
    cluster.assert_settled()

    # A newer version is rolled out as usual.
    plan = new_version(cluster, 3)
    assert reasons(plan) == ["RolloutStarted"]
    assert plan.status["canaryVersion"] == 3
    assert plan.status["phase"] == "Progressing"
    assert progressing(plan)[:2] == ("True", "Progressing")
    assert plan.status["failedVersions"][0]["version"] == 2


def test_failure_limit_zero_rolls_back_on_the_first_failed_interval() -> None:
    cluster = serving(1, rollout={**ROLLOUT, "analysis": {**ANALYSIS, "failureLimit": 0}})
    new_version(cluster)
    plan = cluster.reconcile(ERRORS, after=30)
    assert reasons(plan) == ["RolledBack"]
    assert plan.status["failedVersions"][0]["message"] == (
        "error rate 20.00% over the limit 5.00%; 1 failed intervals, limit 0"
    )


def test_failures_count_across_steps() -> None:
    cluster = serving(1)
    new_version(cluster)  # 15s
    cluster.reconcile(ERRORS, after=30)  # 45s: failure 1
    cluster.reconcile(GOOD, after=30)  # 75s: the step passes
    assert cluster.obj["status"]["currentStep"] == 1
    plan = cluster.reconcile(ERRORS, after=30)  # failure 2, in step 2
    assert reasons(plan) == ["RolledBack"]


def test_pinned_version_rolled_back_is_not_started_again() -> None:
    cluster = serving(1, 2, modelVersion=1)
    cluster.obj["spec"]["modelVersion"] = 2
    cluster.obj["metadata"]["generation"] = 2
    assert reasons(cluster.reconcile()) == ["RolloutStarted"]
    cluster.reconcile(ERRORS, after=30)
    plan = cluster.reconcile(ERRORS, after=30)
    assert reasons(plan) == ["RolledBack"]
    for _ in range(3):
        plan = cluster.reconcile(after=60)
        assert plan.events == ()
        assert "canaryVersion" not in plan.status
        assert cluster.pods() == {STABLE: (4, 1)}
    assert plan.status["phase"] == "RolledBack"
    # Until asked to.
    act(cluster, "retry")
    plan = cluster.reconcile()
    assert reasons(plan) == ["RetryRequested", "RolloutStarted"]
    assert plan.status["canaryVersion"] == 2


# ---- manual actions ----


def test_abort_rolls_the_canary_back() -> None:
    cluster = serving(1)
    new_version(cluster)
    act(cluster, "abort")
    plan = cluster.reconcile()
    assert plan.cleared_annotations == (ACTION_ANNOTATION,)
    assert ACTION_ANNOTATION not in cluster.obj["metadata"]["annotations"]
    assert plan.status["failedVersions"] == [
        {
            "version": 2,
            "reason": "Aborted",
            "message": "aborted by hand (gyre rollout abort)",
            "time": at(20),
        }
    ]
    assert plan.deleted == (CANARY_KEY,)
    assert progressing(plan)[:2] == ("False", "RolledBack")
    assert plan.status["phase"] == "RolledBack"
    assert cluster.reconcile().events == ()  # not started again


def test_promote_skips_one_step_at_a_time() -> None:
    cluster = serving(1)
    new_version(cluster)
    act(cluster, " promote ")
    plan = cluster.reconcile()
    assert plan.events == (
        EventRecord(
            NORMAL,
            "StepSkipped",
            "step 1 skipped by hand (gyre rollout promote); step 2 of 2",
        ),
    )
    assert plan.cleared_annotations == (ACTION_ANNOTATION,)
    assert plan.status["currentStep"] == 1
    cluster.follow()
    assert cluster.pods() == {STABLE: (2, 1), CANARY: (2, 2)}
    act(cluster, "promote")
    plan = cluster.reconcile()
    assert plan.events == (
        EventRecord(NORMAL, "Promoting", "promoted by hand (gyre rollout promote)"),
    )
    assert cluster.pods() == {STABLE: (4, 2), CANARY: (2, 2)}
    plan = cluster.reconcile()
    assert reasons(plan) == ["Promoted"]
    assert plan.status["stableVersion"] == 2
    assert cluster.pods() == {STABLE: (4, 2)}


def test_promote_full_skips_every_step() -> None:
    cluster = serving(1)
    new_version(cluster)
    act(cluster, "promote-full")
    plan = cluster.reconcile()
    assert plan.events == (
        EventRecord(NORMAL, "Promoting", "promoted by hand (gyre rollout promote --full)"),
    )
    assert cluster.pods() == {STABLE: (4, 2), CANARY: (1, 2)}
    assert progressing(plan)[:2] == ("True", "Promoting")
    plan = cluster.reconcile()
    assert reasons(plan) == ["Promoted"]
    assert plan.deleted == (CANARY_KEY,)
    assert plan.status["phase"] == "Ready"


def _rolled_back(*numbers: int) -> Cluster:
    """Version 1 serves; each of `numbers` was rolled out in turn and aborted."""
    cluster = serving(1)
    for number in numbers:
        new_version(cluster, number)
        act(cluster, "abort")
        assert reasons(cluster.reconcile()) == ["RolledBack"]
    return cluster


@pytest.mark.parametrize(
    ("action", "started", "still_failed"),
    [
        ("retry", 3, [2]),  # the newest rolled-back version
        ("retry=3", 3, [2]),
        ("retry=2", 2, [3]),
        ("retry=7", None, [2, 3]),  # not rolled back: nothing to retry
        ("retry=x", 3, [2]),
        ("bogus", None, [2, 3]),
        ("promote", None, [2, 3]),  # no canary runs
        ("abort", None, [2, 3]),
    ],
)
def test_retry_rolls_a_rolled_back_version_out_again(
    action: str, started: int | None, still_failed: list[int]
) -> None:
    cluster = _rolled_back(2, 3)
    act(cluster, action)
    plan = cluster.reconcile()
    assert plan.cleared_annotations == (ACTION_ANNOTATION,)
    assert [f["version"] for f in plan.status["failedVersions"]] == still_failed
    assert plan.status.get("canaryVersion") == started
    if started is None:
        assert plan.events == ()
        assert plan.applied == ()
    else:
        assert plan.events[0] == EventRecord(
            NORMAL, "RetryRequested", f"version {started} may be rolled out again"
        )
        assert reasons(plan) == ["RetryRequested", "RolloutStarted"]
        assert cluster.pods()[CANARY] == (1, started)
    # Consumed: the next build does not act again.
    assert cluster.reconcile().cleared_annotations == ()


def test_no_action_clears_nothing() -> None:
    cluster = serving(1)
    cluster.obj["metadata"]["annotations"] = {"other": "x"}
    plan = cluster.reconcile()
    assert plan.cleared_annotations == ()


# ---- changes while a canary runs ----


def test_spec_change_mid_rollout_restarts_from_step_zero() -> None:
    cluster = serving(1)
    new_version(cluster)  # 15s
    cluster.reconcile(ERRORS, after=30)  # 45s: one failure
    cluster.reconcile(GOOD, after=30)  # 75s: step 2
    assert cluster.obj["status"]["currentStep"] == 1

    cluster.obj["spec"]["runtime"]["replicas"] = 10
    cluster.obj["metadata"]["generation"] = 2
    plan = cluster.reconcile(after=10)  # 85s
    assert plan.events == (
        EventRecord(
            NORMAL,
            "RolloutRestarted",
            "rolling version 2 out as a canary beside version 1: step 1 of 2 at weight 25%",
        ),
    )
    status = plan.status
    assert status["observedGeneration"] == 2
    assert status["currentStep"] == 0
    assert status["stepStartedAt"] == at(85)
    assert status["analysis"] == {"failures": 0, "passes": 0}
    # 25% of 10 pods: 2.5 rounds up to 3, so 30% really goes to the canary.
    cluster.follow()
    assert cluster.pods() == {STABLE: (7, 1), CANARY: (3, 2)}
    assert status["canaryWeight"] == 30
    # The failure before the change no longer counts: one more is tolerated.
    plan = cluster.reconcile(ERRORS, after=30)
    assert reasons(plan) == ["AnalysisFailed"]
    # Without another change, nothing restarts.
    plan = cluster.reconcile(GOOD, after=30)
    assert reasons(plan) == ["StepPassed"]


def test_newer_version_during_a_canary_replaces_it() -> None:
    cluster = serving(1)
    new_version(cluster)
    cluster.reconcile(GOOD, after=30)
    plan = new_version(cluster, 3)
    assert plan.events == (
        EventRecord(NORMAL, "RolloutCancelled", "version 2 is no longer the version to serve"),
        EventRecord(
            NORMAL,
            "RolloutStarted",
            "rolling version 3 out as a canary beside version 1: step 1 of 2 at weight 25%",
        ),
    )
    assert plan.status["canaryVersion"] == 3
    assert plan.status["analysis"] == {"failures": 0, "passes": 0}
    assert cluster.pods() == {STABLE: (3, 1), CANARY: (1, 3)}
    assert plan.status["failedVersions"] == []  # cancelled is not rolled back


def test_pinning_the_stable_version_again_cancels_the_canary() -> None:
    cluster = serving(1, 2, modelVersion=1)
    cluster.obj["spec"]["modelVersion"] = 2
    cluster.obj["metadata"]["generation"] = 2
    cluster.reconcile()
    cluster.obj["spec"]["modelVersion"] = 1
    cluster.obj["metadata"]["generation"] = 3
    plan = cluster.reconcile()
    assert reasons(plan) == ["RolloutCancelled"]
    assert plan.deleted == (CANARY_KEY,)
    assert cluster.pods() == {STABLE: (4, 1)}
    assert plan.status["phase"] == "Ready"
    assert progressing(plan) == ("False", "Idle", "no rollout is running")


def test_rollout_without_steps_replaces_the_stable_version_at_once() -> None:
    cluster = serving(1, rollout={"steps": [], "analysis": ANALYSIS})
    cluster.versions.append(servable_version(2))
    plan = cluster.reconcile()
    assert cluster.pods() == {STABLE: (4, 2)}
    assert progressing(plan)[:2] == ("True", "Promoting")
    plan = cluster.reconcile()
    assert reasons(plan) == ["Promoted"]
    assert plan.status["stableVersion"] == 2


# ---- Gateway API routing ----


def _route_weights(cluster: Cluster) -> list[tuple[str, int]]:
    assert cluster.route is not None
    backends = cluster.route["spec"]["rules"][0]["backendRefs"]
    return [(b["name"], b["weight"]) for b in backends]


def test_gateway_api_canary_weights_are_on_the_route() -> None:
    cluster = Cluster(isvc(trafficRouting=GATEWAY_ROUTING), [servable_version(1)])
    plan = cluster.reconcile()
    assert names(plan) == [
        "Deployment/iris-svc-stable",
        "Service/iris-svc",
        "Service/iris-svc-stable-svc",
        "Service/iris-svc-canary-svc",
        "HTTPRoute/iris-svc",
    ]
    assert _route_weights(cluster) == [("iris-svc-stable-svc", 100), ("iris-svc-canary-svc", 0)]
    cluster.reconcile()
    cluster.assert_settled()

    plan = new_version(cluster)  # 15s
    # The stable version keeps all its pods; the canary gets enough for its share.
    assert cluster.pods() == {STABLE: (4, 1), CANARY: (1, 2)}
    assert names(plan) == ["Deployment/iris-svc-canary", "HTTPRoute/iris-svc"]
    assert _route_weights(cluster) == [("iris-svc-stable-svc", 75), ("iris-svc-canary-svc", 25)]
    assert plan.status["canaryWeight"] == 25
    cluster.assert_settled()

    cluster.reconcile(GOOD, after=30)
    plan = cluster.reconcile(GOOD, after=30)  # 75s: step 2
    assert cluster.pods() == {STABLE: (4, 1), CANARY: (2, 2)}
    assert _route_weights(cluster) == [("iris-svc-stable-svc", 50), ("iris-svc-canary-svc", 50)]
    assert plan.status["canaryWeight"] == 50

    cluster.reconcile(GOOD, after=30)
    cluster.held.add(STABLE)
    cluster.reconcile(GOOD, after=30)  # promoting
    assert cluster.pods() == {STABLE: (4, 2), CANARY: (2, 2)}
    assert _route_weights(cluster) == [("iris-svc-stable-svc", 50), ("iris-svc-canary-svc", 50)]
    cluster.release(STABLE)
    plan = cluster.reconcile()
    assert reasons(plan) == ["Promoted"]
    assert plan.deleted == (CANARY_KEY,)
    assert _route_weights(cluster) == [("iris-svc-stable-svc", 100), ("iris-svc-canary-svc", 0)]
    cluster.assert_settled()


# ---- serving pods in trouble ----


def test_stable_pods_crash_looping_fail_the_service() -> None:
    problem = (
        "pod iris-svc-stable-5f7d-q8 container fetch-model: CrashLoopBackOff: "
        "DigestMismatch: sha256 of the model differs"
    )
    cluster = Cluster(isvc(), [servable_version(1)], broken={STABLE})
    cluster.reconcile()
    plan = cluster.reconcile(problems={STABLE: problem})
    assert plan.status["phase"] == "Failed"
    assert ready(plan) == ("False", "PodsNotReady", f"no pod of version 1 is ready: {problem}")
    assert plan.events == ()
    assert plan.applied == ()
    # No pod ready and nothing said why (yet): still starting, not failed.
    plan = cluster.reconcile()
    assert plan.status["phase"] == "Progressing"
    assert ready(plan) == ("False", "PodsNotReady", "no pod of version 1 is ready")
    # The pods come up.
    cluster.broken.clear()
    cluster.settle(STABLE)
    plan = cluster.reconcile()
    assert plan.status["phase"] == "Ready"
    assert ready(plan)[0] == "True"


def test_new_version_replaces_a_stable_version_that_never_came_up() -> None:
    cluster = Cluster(isvc(), [servable_version(1)], broken={STABLE})
    cluster.reconcile()
    cluster.broken.clear()
    plan = new_version(cluster)
    # Nothing serves to compare a canary with: the new version becomes stable directly.
    assert reasons(plan) == ["Deploying"]
    assert "canaryVersion" not in plan.status
    assert plan.status["stableVersion"] == 2
    assert cluster.pods() == {STABLE: (4, 2)}


# ---- idempotence ----


def test_children_deleted_by_hand_are_made_again() -> None:
    cluster = serving(1)
    new_version(cluster)
    del cluster.deployments[CANARY]
    del cluster.services["iris-svc"]
    plan = cluster.build()
    # Until the canary's pods are back, the stable side serves on all four pods again.
    assert names(plan) == [
        "Deployment/iris-svc-stable",
        "Deployment/iris-svc-canary",
        "Service/iris-svc",
    ]


def test_a_child_changed_by_hand_is_applied_again() -> None:
    cluster = serving(1)
    cluster.deployments[STABLE]["spec"]["replicas"] = 9
    plan = cluster.build()
    assert names(plan) == ["Deployment/iris-svc-stable"]
    assert plan.applied[0]["spec"]["replicas"] == 4


def test_stages_of_a_rollout_are_settled() -> None:
    cluster = serving(1)
    cluster.assert_settled()
    new_version(cluster)
    cluster.assert_settled()
    cluster.reconcile(GOOD, after=30)
    cluster.assert_settled()
    cluster.reconcile(GOOD, after=30)  # the next step: the canary grows first
    cluster.follow()  # then, its pods ready, the stable side shrinks
    cluster.assert_settled()
    cluster.held.add(STABLE)
    cluster.reconcile(GOOD, after=60)  # promoting, the stable Deployment rolling out
    cluster.assert_settled()
    cluster.release(STABLE)
    cluster.reconcile()
    assert cluster.obj["status"]["stableVersion"] == 2
    cluster.assert_settled()


# ---- when figures are read ----


@pytest.mark.parametrize(
    ("status", "ready_pods", "seconds", "due"),
    [
        ({}, 1, 0, False),  # no canary
        ({"canaryVersion": 2, "currentStep": 0}, 0, 0, False),  # no canary pod ready
        ({"canaryVersion": 2, "currentStep": 0}, 1, 0, True),  # never read
        ({"canaryVersion": 2, "currentStep": 2}, 1, 0, False),  # promoting: nothing to judge
        ({"canaryVersion": 2, "currentStep": 0, "analysis": {"lastTime": at(0)}}, 1, 29, False),
        ({"canaryVersion": 2, "currentStep": 0, "analysis": {"lastTime": at(0)}}, 1, 30, True),
    ],
)
def test_analysis_is_due_every_interval_while_a_step_runs(
    status: dict[str, Any], ready_pods: int, seconds: int, due: bool
) -> None:
    obj = isvc()
    obj["status"] = {"stableVersion": 1, **status}
    service = InferenceService.model_validate(obj)
    assert analysis_due(service, ready_pods, NOW + timedelta(seconds=seconds)) is due


# ---- what follows from a status ----


def test_services_serving_a_version_are_those_with_it_on_either_side() -> None:
    services = [
        {"metadata": {"name": "b"}, "status": {"stableVersion": 2, "canaryVersion": 3}},
        {"metadata": {"name": "a"}, "status": {"stableVersion": 3}},
        {"metadata": {"name": "c"}},
    ]
    assert services_serving(services, 3) == ["a", "b"]
    assert services_serving(services, 2) == ["b"]
    assert services_serving(services, 1) == []


@pytest.mark.parametrize(
    ("old", "new", "result"),
    [
        ({"stableVersion": 1, "canaryVersion": 2}, {"stableVersion": 2}, "Promoted"),
        (
            {"stableVersion": 1, "canaryVersion": 2},
            {"stableVersion": 1, "failedVersions": [{"version": 2}]},
            "RolledBack",
        ),
        ({"stableVersion": 1, "canaryVersion": 2}, {"stableVersion": 1, "canaryVersion": 2}, None),
        ({}, {"stableVersion": 1}, None),  # a first deployment is no rollout
    ],
)
def test_rollout_result(old: dict[str, Any], new: dict[str, Any], result: str | None) -> None:
    assert rollout_result(old, new) == result
