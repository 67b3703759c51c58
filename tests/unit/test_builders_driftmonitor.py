"""DriftMonitor builder: check slots, one check Job per slot, verdicts, retraining policy.

A small world holds the monitor and what its reconcile observes; `Monitor.step` builds at a
given time, writes the status back, turns created check Jobs into active ones and created
TrainingRuns into runs, so whole sequences (missed slots, restarts, flapping drift) play out
as they would against a cluster.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from builders_fixtures import (
    CONFIG,
    CREATED,
    DIGEST_A,
    DIGEST_B,
    condition,
    dataset_model,
    failed,
    inferenceservice_obj,
    metadata,
    observed_job,
    ready_dataset_status,
    servable_version,
    succeeded,
    trainingrun_obj,
    version,
)

from gyre_operator.api import DriftMonitor, InferenceService, ModelVersion, TrainingRun
from gyre_operator.builders.driftcheck import (
    CHECK_ANNOTATION,
    build_check_job,
    check_id,
    check_job_name,
    check_slots,
)
from gyre_operator.builders.driftmonitor import (
    MonitorObserved,
    build_driftmonitor,
    concerns_monitor,
)
from gyre_operator.builders.jobs import JobState, ObservedJob
from gyre_operator.builders.plan import WARNING, Plan
from gyre_operator.builders.retrain import (
    CHECK_LABEL,
    MONITOR_LABEL,
    RetrainReason,
    retrain_run_name,
    retrain_state,
)

START = datetime.fromisoformat(CREATED)
MINUTE = timedelta(minutes=1)
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def monitor_obj(**spec_fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "inferenceServiceRef": {"name": "iris-svc"},
        "interval": "1m",
        "retrain": {"enabled": True, "cooldown": "1h", "maxRunsPerDay": 3},
    }
    spec.update(spec_fields)
    return {
        "apiVersion": "gyre.dev/v1alpha1",
        "kind": "DriftMonitor",
        "metadata": metadata("iris-drift"),
        "spec": spec,
    }


def served_version(number: int = 1, digest: str = DIGEST_A, run: str | None = "iris-run") -> Any:
    obj = servable_version(number, features=FEATURES)
    lineage = {"dataset": "iris", "datasetDigest": digest, "features": FEATURES}
    if run is not None:
        lineage["trainingRun"] = run
    obj["spec"]["lineage"] = lineage
    return ModelVersion.model_validate(obj)


def service(stable: int | None = 1, failed_versions: tuple[int, ...] = ()) -> InferenceService:
    status: dict[str, Any] = {"phase": "Ready"}
    if stable is not None:
        status["stableVersion"] = stable
    status["failedVersions"] = [
        {"version": v, "reason": "AnalysisFailed", "time": CREATED} for v in failed_versions
    ]
    return InferenceService.model_validate(inferenceservice_obj(status=status))


def dataset_with(*digests: str) -> Any:
    status = ready_dataset_status(digests[-1])
    status["versions"] = [version(d) for d in reversed(digests)]
    return dataset_model(status=status)


def trained_by() -> TrainingRun:
    gates = [{"metric": "accuracy", "min": 0.9}]
    return TrainingRun.model_validate(
        trainingrun_obj(
            "iris-run",
            trainer={"algorithm": "random_forest_classifier", "hyperparameters": {"n": 5}},
            gates=gates,
            activeDeadlineSeconds=600,
        )
    )


def drift_result(verdict: str = "Drift", drifted: int = 3, samples: int = 1000) -> dict[str, Any]:
    features = [
        {
            "name": name,
            "method": "psi",
            "score": 0.5 if i < drifted else 0.01,
            "drifted": i < drifted,
            "scores": {"psi": 0.5 if i < drifted else 0.01, "ks": 0.2},
        }
        for i, name in enumerate(FEATURES)
    ]
    return {
        "verdict": verdict,
        "samples": samples,
        "driftedFeatureShare": drifted / len(FEATURES),
        "reportUri": "s3://gyre/artifacts/drift/iris-drift/x.json",
        "features": features if verdict != "InsufficientData" else [],
    }


NO_DRIFT = drift_result("NoDrift", drifted=0)
DRIFT = drift_result("Drift", drifted=3)


@dataclass
class Monitor:
    """The monitor and what its reconcile observes, stepped through time."""

    obj: dict[str, Any] = field(default_factory=monitor_obj)
    observed: MonitorObserved = field(
        default_factory=lambda: MonitorObserved(
            service=service(),
            served=served_version(),
            trained_by=trained_by(),
            datasets={"iris": dataset_with(DIGEST_A)},
        )
    )
    jobs: dict[str, ObservedJob] = field(default_factory=dict)
    runs: dict[str, TrainingRun] = field(default_factory=dict)

    def build(self, now: datetime) -> Plan:
        before = copy.deepcopy(self.obj)
        newest = (self.obj.get("status") or {}).get("retrainRuns") or []
        observed = replace(
            self.observed,
            jobs=tuple(self.jobs.values()),
            runs=dict(self.runs),
            retrain_run=self.runs.get(newest[0]["name"]) if newest else None,
        )
        plan = build_driftmonitor(self.obj, observed, CONFIG, now)
        assert self.obj == before, "the builder changed its input"
        return plan

    def step(self, now: datetime) -> Plan:
        plan = self.build(now)
        self.obj["status"] = plan.status
        for child in plan.children:
            name = child["metadata"]["name"]
            if child["kind"] == "Job":
                annotations = child["metadata"]["annotations"]
                self.jobs[name] = observed_job(name, JobState.ACTIVE, annotations=annotations)
            else:
                child["metadata"] |= {"uid": f"uid-{name}", "creationTimestamp": _stamp(now)}
                self.runs[name] = TrainingRun.model_validate(child)
        for *_, name in plan.deleted:
            del self.jobs[name]
        return plan

    def finish(self, result: dict[str, Any] | None = None, *, failure: Any = None) -> str:
        """The active check Job ends with a result (or a failure); returns its check id."""
        name, job = next((n, j) for n, j in self.jobs.items() if j.state is JobState.ACTIVE)
        state = JobState.FAILED if failure is not None else JobState.SUCCEEDED
        self.jobs[name] = replace(
            job,
            state=state,
            result=failure if failure is not None else succeeded(result or NO_DRIFT),
            completion_time="2026-01-02T03:00:30Z",
        )
        return job.annotations[CHECK_ANNOTATION]

    def check(self, at: datetime, result: dict[str, Any]) -> Plan:
        """A whole check: its slot's Job starts, finishes with the result and is recorded."""
        started = self.step(at)
        assert [c["kind"] for c in started.children] == ["Job"]
        self.finish(result)
        return self.step(at + timedelta(seconds=5))

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.obj["status"])


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def reasons(plan: Plan) -> list[str]:
    return [e.reason for e in plan.events]


def kinds(plan: Plan) -> list[str]:
    return [c["kind"] for c in plan.children]


# ---- slots ----


@pytest.mark.parametrize(
    ("spec", "now", "current", "upcoming"),
    [
        ({"interval": "1m"}, START + timedelta(seconds=30), None, START + MINUTE),
        ({"interval": "1m"}, START + MINUTE, START + MINUTE, START + 2 * MINUTE),
        ({"interval": "1m"}, START + 150 * MINUTE / 60, START + 2 * MINUTE, START + 3 * MINUTE),
        ({"schedule": "*/5 * * * *"}, START + 4 * MINUTE, START, START + 5 * MINUTE),
        (
            {"schedule": "*/5 * * * *"},
            START + 12 * MINUTE,
            START + 10 * MINUTE,
            START + 15 * MINUTE,
        ),
        ({"schedule": "30 * * * *"}, START + 10 * MINUTE, None, START + 30 * MINUTE),
    ],
)
def test_check_slots(spec: dict[str, Any], now: datetime, current: Any, upcoming: Any) -> None:
    fields = {"interval": None, **spec}
    obj = monitor_obj(**{k: v for k, v in fields.items() if v is not None})
    if "schedule" in spec:
        del obj["spec"]["interval"]
    slots = check_slots(DriftMonitor.model_validate(obj), now)
    assert (slots.current, slots.next) == (current, upcoming)


def test_an_invalid_cron_schedule_is_an_invalid_spec() -> None:
    obj = monitor_obj(schedule="61 * * * * *x")
    del obj["spec"]["interval"]
    world = Monitor(obj=obj)
    plan = world.step(START + 10 * MINUTE)
    assert condition(plan.status)["reason"] == "InvalidSpec"
    assert "schedule" in condition(plan.status)["message"]
    assert not plan.children


# ---- the check Job ----


def test_before_the_first_slot_nothing_runs_and_the_next_check_is_known() -> None:
    world = Monitor()
    plan = world.step(START + timedelta(seconds=20))
    assert not plan.children
    assert plan.status["phase"] == "Pending"
    assert plan.status["nextCheckTime"] == "2026-01-02T03:01:00Z"
    assert plan.requeue_after == pytest.approx(40.0)
    assert condition(plan.status)["reason"] == "WaitingForFirstCheck"


def test_a_slot_starts_one_check_job_against_the_trained_on_profile() -> None:
    world = Monitor()
    plan = world.step(START + MINUTE + timedelta(seconds=1))
    (job,) = plan.children
    assert job["metadata"]["name"] == "iris-drift-check-20260102-030100"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "DriftMonitor"
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert args[0] == "drift"
    assert flags["--reference"] == version(DIGEST_A)["profileUri"]
    assert flags["--requests"] == "s3://gyre/artifacts/requests/iris-svc/"
    assert flags["--report"] == "s3://gyre/artifacts/drift/iris-drift/20260102-030100.json"
    assert flags["--window-requests"] == "1000"
    assert flags["--min-samples"] == "500"
    assert json.loads(flags["--methods"])["numeric"]["psi"]["threshold"] == 0.2
    assert reasons(plan) == ["CheckStarted"]
    # Building again while it runs, and after a restart, starts nothing more.
    assert not world.step(START + MINUTE + timedelta(seconds=20)).children


def test_the_check_job_carries_a_duration_window_and_chosen_features() -> None:
    monitor = DriftMonitor.model_validate(
        monitor_obj(window={"duration": "1h30m"}, features=["petal_length", "petal_width"])
    )
    job = build_check_job(monitor_obj(), monitor, "20260102-030100", "s3://r/profile.json", CONFIG)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--window-seconds") + 1] == "5400"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--feature"] == [
        "petal_length",
        "petal_width",
    ]


def test_slots_missed_while_the_operator_was_down_run_once() -> None:
    world = Monitor()
    plan = world.step(START + 10 * MINUTE + timedelta(seconds=3))
    assert [c["metadata"]["name"] for c in plan.children] == ["iris-drift-check-20260102-031000"]
    world.finish(NO_DRIFT)
    world.step(START + 10 * MINUTE + timedelta(seconds=9))
    assert not world.step(START + 10 * MINUTE + timedelta(seconds=30)).children
    assert [r["id"] for r in world.status["history"]] == ["20260102-031000"]


def test_a_check_still_running_holds_the_next_slot_until_it_is_recorded() -> None:
    world = Monitor()
    world.step(START + MINUTE)
    assert not world.step(START + 2 * MINUTE + timedelta(seconds=1)).children
    world.finish(NO_DRIFT)
    plan = world.step(START + 2 * MINUTE + timedelta(seconds=2))
    assert world.status["lastCheck"]["id"] == "20260102-030100"
    assert [c["metadata"]["name"] for c in plan.children] == ["iris-drift-check-20260102-030200"]


def test_old_finished_check_jobs_are_removed_beyond_the_newest_three() -> None:
    world = Monitor()
    for minute in range(1, 7):
        world.check(START + minute * MINUTE, NO_DRIFT)
    assert sorted(world.jobs) == [
        check_job_name("iris-drift", f"20260102-03{m:02d}00") for m in (4, 5, 6)
    ]
    assert len(world.status["history"]) == 6


# ---- verdicts ----


def test_no_drift_makes_the_monitor_healthy_and_ready() -> None:
    world = Monitor()
    plan = world.check(START + MINUTE, NO_DRIFT)
    status = plan.status
    assert status["phase"] == "Healthy"
    assert condition(status)["status"] == "True"
    assert condition(status, "Drifted")["reason"] == "NoDrift"
    assert status["lastCheck"]["verdict"] == "NoDrift"
    assert status["lastCheck"]["features"][0]["scores"] == {"psi": 0.01, "ks": 0.2}
    assert status["history"][0]["samples"] == 1000
    assert reasons(plan) == ["NoDrift"]


def test_insufficient_data_is_never_a_verdict() -> None:
    world = Monitor()
    plan = world.check(START + MINUTE, drift_result("InsufficientData", samples=12))
    assert plan.status["phase"] == "InsufficientData"
    assert condition(plan.status, "Drifted")["status"] == "Unknown"
    assert not [c for c in plan.children if c["kind"] == "TrainingRun"]


def test_an_empty_window_is_insufficient_data_with_no_samples() -> None:
    world = Monitor()
    world.step(START + MINUTE)
    world.finish(failure=failed("EmptyWindow", "no logged request under s3://x/"))
    plan = world.step(START + MINUTE + timedelta(seconds=5))
    assert plan.status["phase"] == "InsufficientData"
    assert plan.status["lastCheck"]["samples"] == 0
    assert condition(plan.status)["status"] == "True"


def test_a_failed_check_is_reported_and_the_next_good_one_recovers() -> None:
    world = Monitor()
    world.step(START + MINUTE)
    world.finish(failure=failed("FeatureMissing", "feature petal_width is not in the logs"))
    plan = world.step(START + MINUTE + timedelta(seconds=5))
    assert plan.status["phase"] == "Failed"
    ready = condition(plan.status)
    assert (ready["status"], ready["reason"]) == ("False", "FeatureMissing")
    assert "petal_width" in ready["message"]
    assert [(e.type, e.reason) for e in plan.events] == [(WARNING, "CheckFailed")]
    assert "failure" in plan.status["history"][0]
    plan = world.check(START + 2 * MINUTE, NO_DRIFT)
    assert plan.status["phase"] == "Healthy"
    assert condition(plan.status)["status"] == "True"


def test_an_unusable_result_is_a_failed_check() -> None:
    world = Monitor()
    world.step(START + MINUTE)
    world.finish({"verdict": "Maybe"})
    plan = world.step(START + MINUTE + timedelta(seconds=5))
    assert plan.status["phase"] == "Failed"
    assert plan.status["history"][0]["failure"].startswith("InvalidResult")


# ---- what the monitor cannot see ----


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"service": None}, "InferenceServiceNotFound"),
        ({"served": None}, "NoServedModel"),
        ({"datasets": {}}, "ReferenceNotFound"),
        ({"served": served_version(digest=DIGEST_B)}, "ReferenceNotFound"),
    ],
)
def test_what_stands_in_the_way_is_a_condition_and_one_event(
    change: dict[str, Any], reason: str
) -> None:
    world = Monitor()
    world.observed = replace(world.observed, **change)
    plan = world.step(START + MINUTE)
    assert not plan.children
    assert (condition(plan.status)["status"], condition(plan.status)["reason"]) == ("False", reason)
    assert reasons(plan) == [reason]
    assert reasons(world.step(START + MINUTE + timedelta(seconds=5))) == []
    world.observed = Monitor().observed
    assert kinds(world.step(START + MINUTE + timedelta(seconds=10))) == ["Job"]


def test_a_service_that_logs_nothing_is_reported() -> None:
    world = Monitor()
    svc = inferenceservice_obj(requestLogging={"enabled": False}, status={"stableVersion": 1})
    world.observed = replace(world.observed, service=InferenceService.model_validate(svc))
    plan = world.step(START + MINUTE)
    assert condition(plan.status)["reason"] == "RequestLoggingDisabled"


def test_a_reference_dataset_in_the_spec_uses_its_current_version() -> None:
    world = Monitor(obj=monitor_obj(reference={"datasetRef": {"name": "iris"}}))
    world.observed = replace(world.observed, datasets={"iris": dataset_with(DIGEST_A, DIGEST_B)})
    (job,) = world.step(START + MINUTE).children
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--reference") + 1] == version(DIGEST_B)["profileUri"]


# ---- retraining ----


def fresh(world: Monitor) -> Monitor:
    """New data has landed: the Dataset's current version is newer than the trained-on one."""
    world.observed = replace(world.observed, datasets={"iris": dataset_with(DIGEST_A, DIGEST_B)})
    return world


def test_drift_with_fresh_data_starts_one_training_run_from_the_served_models_run() -> None:
    world = fresh(Monitor())
    plan = world.check(START + MINUTE, DRIFT)
    (run,) = plan.children
    assert run["kind"] == "TrainingRun"
    assert run["metadata"]["name"] == "iris-drift-retrain-20260102-030100"
    assert run["metadata"]["labels"][MONITOR_LABEL] == "iris-drift"
    assert run["metadata"]["labels"][CHECK_LABEL] == "20260102-030100"
    assert "ownerReferences" not in run["metadata"]
    spec = run["spec"]
    assert spec["datasetRef"] == {"name": "iris", "digest": DIGEST_B}
    assert spec["model"] == "iris"
    assert spec["trainer"]["algorithm"] == "random_forest_classifier"
    assert spec["gates"] == [{"metric": "accuracy", "min": 0.9}]
    assert spec["activeDeadlineSeconds"] == 600
    status = plan.status
    assert status["phase"] == "Drifted"
    assert status["retrainRuns"][0]["datasetDigest"] == DIGEST_B
    assert status["history"][0]["retrainRun"] == run["metadata"]["name"]
    assert condition(status, "Retraining")["reason"] == "RunCreated"
    assert reasons(plan) == ["DriftDetected", "RunCreated"]


def test_the_template_overrides_the_trainer_and_gates() -> None:
    template = {
        "trainer": {"algorithm": "logistic_regression"},
        "gates": [{"metric": "f1_macro", "min": 0.5}],
        "activeDeadlineSeconds": 60,
    }
    world = fresh(Monitor(obj=monitor_obj(retrain={"enabled": True, "template": template})))
    (run,) = world.check(START + MINUTE, DRIFT).children
    assert run["spec"]["trainer"]["algorithm"] == "logistic_regression"
    assert "hyperparameters" not in run["spec"]["trainer"]
    assert run["spec"]["gates"] == [{"metric": "f1_macro", "min": 0.5}]
    assert run["spec"]["activeDeadlineSeconds"] == 60


def test_drift_without_fresh_data_is_reported_not_retrained() -> None:
    world = Monitor()
    plan = world.check(START + MINUTE, DRIFT)
    assert not plan.children
    assert plan.status["phase"] == "Drifted"
    drifted = condition(plan.status, "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("True", "NoFreshData")
    assert ("Warning", "NoFreshData") in [(e.type, e.reason) for e in plan.events]


def test_disabled_retraining_only_reports() -> None:
    world = fresh(Monitor(obj=monitor_obj(retrain={"enabled": False})))
    plan = world.check(START + MINUTE, DRIFT)
    assert not plan.children
    assert condition(plan.status, "Retraining")["reason"] == "Disabled"


def test_one_run_in_flight_at_most_then_the_cooldown_then_the_daily_limit() -> None:
    world = fresh(Monitor())
    assert kinds(world.check(START + MINUTE, DRIFT)) == ["TrainingRun"]
    plan = world.check(START + 2 * MINUTE, DRIFT)
    assert not plan.children
    assert condition(plan.status, "Retraining")["reason"] == RetrainReason.IN_FLIGHT
    # The run ends (its version failed the gates): the cooldown still holds.
    (name,) = world.runs
    world.runs[name] = _with_phase(world.runs[name], "Failed")
    world.observed = replace(
        world.observed, datasets={"iris": dataset_with(DIGEST_A, DIGEST_B, "e" * 64)}
    )
    plan = world.check(START + 3 * MINUTE, DRIFT)
    assert condition(plan.status, "Retraining")["reason"] == RetrainReason.COOLDOWN
    assert not plan.children


def test_the_daily_limit_counts_runs_of_the_last_24_hours() -> None:
    obj = monitor_obj(retrain={"enabled": True, "cooldown": "1m", "maxRunsPerDay": 2})
    world = fresh(Monitor(obj=obj))
    digests = [DIGEST_B, "e" * 64, "f" * 64]
    for i, minute in enumerate((1, 3, 5)):
        world.observed = replace(
            world.observed, datasets={"iris": dataset_with(DIGEST_A, *digests[: i + 1])}
        )
        for name, run in world.runs.items():
            world.runs[name] = _with_phase(run, "Failed")
        plan = world.check(START + minute * MINUTE, DRIFT)
    assert condition(plan.status, "Retraining")["reason"] == RetrainReason.DAILY_LIMIT
    assert len(world.runs) == 2


def test_a_dataset_version_already_trained_on_is_not_fresh() -> None:
    obj = monitor_obj(retrain={"enabled": True, "cooldown": "1m"})
    world = fresh(Monitor(obj=obj))
    world.check(START + MINUTE, DRIFT)
    (name,) = world.runs
    world.runs[name] = _with_phase(world.runs[name], "Failed")
    plan = world.check(START + 5 * MINUTE, DRIFT)
    assert condition(plan.status, "Drifted")["reason"] == "NoFreshData"
    assert len(world.runs) == 1


def test_flapping_drift_within_the_cooldown_starts_exactly_one_run() -> None:
    world = fresh(Monitor())
    for minute, result in enumerate((DRIFT, NO_DRIFT, DRIFT, NO_DRIFT, DRIFT), start=1):
        for name, run in world.runs.items():
            world.runs[name] = _with_phase(run, "Succeeded")
        world.check(START + minute * MINUTE, result)
    assert len(world.runs) == 1
    assert len(world.status["retrainRuns"]) == 1


def test_a_run_created_before_a_restart_is_recorded_not_created_again() -> None:
    world = fresh(Monitor())
    world.step(START + MINUTE)
    identifier = world.finish(DRIFT)
    name = retrain_run_name("iris-drift", identifier)
    run = trainingrun_obj(name, datasetRef={"name": "iris", "digest": DIGEST_B})
    world.runs[name] = TrainingRun.model_validate(run)
    plan = world.step(START + MINUTE + timedelta(seconds=5))
    assert not plan.children
    assert plan.status["retrainRuns"][0]["name"] == name
    assert plan.status["retrainRuns"][0]["datasetDigest"] == DIGEST_B


def test_a_run_the_api_server_refused_is_reported_once_per_check() -> None:
    world = fresh(Monitor())
    world.step(START + MINUTE)
    identifier = world.finish(DRIFT)
    name = retrain_run_name("iris-drift", identifier)
    world.observed = replace(world.observed, refused={name: "spec.trainer: Invalid value"})
    plan = world.step(START + MINUTE + timedelta(seconds=5))
    assert not plan.children
    assert condition(plan.status, "Retraining")["reason"] == RetrainReason.REFUSED
    assert "spec.trainer" in condition(plan.status, "Retraining")["message"]
    assert ("Warning", "RetrainRefused") in [(e.type, e.reason) for e in plan.events]
    assert not world.step(START + MINUTE + timedelta(seconds=9)).children


def test_a_hand_registered_model_needs_a_trainer_in_the_template() -> None:
    world = fresh(Monitor())
    world.observed = replace(world.observed, served=served_version(run=None), trained_by=None)
    plan = world.check(START + MINUTE, DRIFT)
    assert not plan.children
    assert condition(plan.status, "Retraining")["reason"] == RetrainReason.NO_TRAINER


def test_the_retraining_condition_follows_the_run_to_traffic() -> None:
    world = fresh(Monitor())
    world.check(START + MINUTE, DRIFT)
    (name,) = world.runs
    world.runs[name] = _with_phase(world.runs[name], "Succeeded", model_version="iris-v2")
    world.observed = replace(world.observed, retrain_version=served_version(2, DIGEST_B))
    plan = world.step(START + MINUTE + timedelta(seconds=20))
    assert condition(plan.status, "Retraining")["reason"] == RetrainReason.ROLLING_OUT
    world.observed = replace(world.observed, service=service(stable=2))
    plan = world.step(START + MINUTE + timedelta(seconds=30))
    retraining = condition(plan.status, "Retraining")
    assert (retraining["status"], retraining["reason"]) == ("False", "Promoted")
    assert reasons(plan) == ["Promoted"]


@pytest.mark.parametrize(
    ("phase", "stable", "failed_versions", "expected"),
    [
        ("Running", 1, (), (True, RetrainReason.TRAINING)),
        ("Failed", 1, (), (False, RetrainReason.RUN_FAILED)),
        ("Succeeded", 1, (), (True, RetrainReason.ROLLING_OUT)),
        ("Succeeded", 2, (), (False, RetrainReason.PROMOTED)),
        ("Succeeded", 1, (2,), (False, RetrainReason.ROLLED_BACK)),
    ],
)
def test_retrain_state(
    phase: str, stable: int, failed_versions: tuple[int, ...], expected: tuple[bool, str]
) -> None:
    from gyre_operator.api.drift import RetrainRecord

    record = RetrainRecord(name="r", check_id="c", created_at=CREATED)
    run = _with_phase(TrainingRun.model_validate(trainingrun_obj("r")), phase)
    state = retrain_state(record, run, served_version(2), service(stable, failed_versions))
    assert state is not None
    assert (state.in_flight, state.reason) == expected


def _with_phase(run: TrainingRun, phase: str, **status: Any) -> TrainingRun:
    obj = run.model_dump(mode="json", by_alias=True, exclude_none=True)
    obj["status"] = {"phase": phase, **status}
    return TrainingRun.model_validate(obj)


def test_check_ids_sort_by_time() -> None:
    times = [START + timedelta(minutes=m) for m in (9, 10, 100, 1000)]
    assert sorted(check_id(t) for t in times) == [check_id(t) for t in times]


def test_untested_features_and_non_finite_scores_never_reach_the_status() -> None:
    result = drift_result("NoDrift", drifted=0)
    result["features"][0] |= {"score": None, "scores": {"psi": None, "ks": float("nan")}}
    world = Monitor()
    plan = world.check(START + MINUTE, result)
    feature = plan.status["lastCheck"]["features"][0]
    assert feature["score"] == 0.0
    assert "scores" not in feature
    json.dumps(plan.status, allow_nan=False)


@pytest.mark.parametrize(
    ("changed", "concerned"),
    [
        ({"kind": "Dataset", "metadata": {"name": "any", "namespace": "ml"}}, True),
        ({"kind": "Dataset", "metadata": {"name": "any", "namespace": "other"}}, False),
        ({"kind": "InferenceService", "metadata": {"name": "iris-svc", "namespace": "ml"}}, True),
        ({"kind": "InferenceService", "metadata": {"name": "else", "namespace": "ml"}}, False),
        (
            {"kind": "TrainingRun",
             "metadata": {"name": "r", "namespace": "ml", "labels": {MONITOR_LABEL: "iris-drift"}}},
            True,
        ),
        ({"kind": "TrainingRun", "metadata": {"name": "r", "namespace": "ml"}}, False),
    ],
)  # fmt: skip
def test_which_changes_concern_a_monitor(changed: dict[str, Any], concerned: bool) -> None:
    assert concerns_monitor(monitor_obj(), changed) is concerned
