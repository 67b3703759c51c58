"""The demo's milestones and goals, read from hand-made status objects as the operator writes
them, and the demo-sized overrides of the examples."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from gyre_local.demo import DEMO_OVERRIDES, describe_overrides, manifests, with_overrides
from gyre_local.milestones import Mark, Milestone, Progress

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DIGEST = "9f2c1d7c4b0d5b3e2a8f6e1c7d9b0a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b"
DIGEST_2 = "1a2b3c4d5e6f" + "0" * 52
STEPS = {"rollout": {"steps": [{"weight": 25}, {"weight": 50}]}}


def obj(name: str, spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec or {},
        "status": status,
    }


def ready(status: str, reason: str, message: str) -> list[dict[str, str]]:
    return [{"type": "Ready", "status": status, "reason": reason, "message": message}]


def texts(progress: Progress, kind: str, *states: dict[str, Any]) -> list[str]:
    return [m.text for state in states for m in progress.observe(kind, state)]


def dataset(digest: str, rows: int, phase: str = "Ready") -> dict[str, Any]:
    return obj("wine", phase=phase, currentVersion={"digest": digest, "rows": rows})


def run(name: str, **status: Any) -> dict[str, Any]:
    return obj(name, {"model": "wine"}, **status)


def version(name: str, number: int, model: str = "wine", **status: Any) -> dict[str, Any]:
    return obj(name, {"model": model, "version": number}, **status)


def service(**status: Any) -> dict[str, Any]:
    return obj("wine", {"model": "wine", **STEPS}, url="http://wine.default.svc", **status)


def check(check_id: str, verdict: str, samples: int, drifted: int = 0) -> dict[str, Any]:
    features = [{"name": f"f{i}", "method": "psi", "score": 0.5, "drifted": i < drifted}
                for i in range(13)]  # fmt: skip
    return {"id": check_id, "verdict": verdict, "samples": samples, "features": features}


def monitor(phase: str, last: dict[str, Any], *runs: str, **status: Any) -> dict[str, Any]:
    records = [{"name": r, "checkId": last["id"], "createdAt": "t"} for r in runs]
    return obj("wine", phase=phase, lastCheck=last, retrainRuns=records, **status)


def test_dataset_first_version_is_ready_later_ones_are_new_versions() -> None:
    progress = Progress()
    assert texts(
        progress, "Dataset",
        obj("wine", phase="Profiling"), dataset(DIGEST, 178), dataset(DIGEST, 178),
        dataset(DIGEST, 178, phase="Profiling"), dataset(DIGEST_2, 200),
    ) == [
        "Dataset wine Ready (version 9f2c1d7c4b0d, 178 rows)",
        "Dataset wine new version 1a2b3c4d5e6f (200 rows)",
    ]  # fmt: skip


def test_training_run_succeeded_shows_accuracy_and_f1_macro_when_present() -> None:
    progress = Progress()
    succeeded = run("wine-1", phase="Succeeded", metrics={"accuracy": 0.97777, "f1_macro": 0.9761})
    assert texts(progress, "TrainingRun", run("wine-1", phase="Running"), succeeded) == [
        "TrainingRun wine-1 Succeeded (accuracy 0.978, f1_macro 0.976)"
    ]
    assert texts(Progress(), "TrainingRun", run("wine-2", phase="Succeeded")) == [
        "TrainingRun wine-2 Succeeded"
    ]


def test_a_failed_phase_fails_the_loop_with_the_ready_reason_and_message() -> None:
    failed = obj(
        "wine", phase="Failed", conditions=ready("False", "ValidationFailed", "no target column")
    )
    assert Progress().observe("Dataset", failed) == [
        Milestone("Dataset wine Failed: ValidationFailed: no target column", Mark.FAILED)
    ]
    gate = run("wine-1", phase="Failed", conditions=ready("False", "GateNotMet", "accuracy 0.5"))
    reached = Progress().observe("TrainingRun", gate)
    assert [m.failed for m in reached] == [True]


def test_objects_of_other_models_are_no_part_of_the_loop() -> None:
    progress = Progress()
    notebook = version("wine-notebook-v1", 1, model="wine-notebook", phase="Failed")
    assert progress.observe("ModelVersion", notebook) == []
    assert texts(progress, "ModelVersion", version("wine-v1", 1, phase="Ready")) == [
        "ModelVersion wine-v1 Ready"
    ]
    assert "wine-notebook-v1" in progress.objects["ModelVersion"]  # still shown in the view


def test_service_ready_once_then_canary_steps_and_promotion() -> None:
    progress = Progress()
    assert progress.service() is None
    canary = {"stableVersion": 1, "canaryVersion": 2}
    assert texts(
        progress, "InferenceService",
        service(phase="Pending"),
        service(phase="Progressing", stableVersion=1),
        service(phase="Ready", stableVersion=1),
        service(phase="Progressing", **canary, canaryWeight=0, currentStep=0),
        service(phase="Progressing", **canary, canaryWeight=25, currentStep=0),
        service(phase="Progressing", **canary, canaryWeight=25, currentStep=0),
        service(phase="Progressing", **canary, canaryWeight=50, currentStep=1),
        service(phase="Progressing", **canary, canaryWeight=100, currentStep=2),
        service(phase="Ready", stableVersion=2),
    ) == [
        "InferenceService wine Ready (serving version 1)",
        "InferenceService wine canary: version 2 at 25% (step 1 of 2)",
        "InferenceService wine canary: version 2 at 50% (step 2 of 2)",
        "InferenceService wine promoted version 2 (was 1)",
    ]  # fmt: skip
    served = progress.service()
    assert served is not None and served["status"]["stableVersion"] == 2


def test_a_rollback_fails_the_loop() -> None:
    progress = Progress()
    progress.observe("InferenceService", service(phase="Ready", stableVersion=1))
    rolled_back = service(
        phase="RolledBack",
        stableVersion=1,
        failedVersions=[{"version": 2, "reason": "AnalysisFailed", "message": "error rate 0.3"}],
    )
    assert progress.observe("InferenceService", rolled_back) == [
        Milestone(
            "InferenceService wine rolled back version 2: AnalysisFailed: error rate 0.3",
            Mark.FAILED,
        )
    ]
    assert progress.observe("InferenceService", rolled_back) == []


def test_drift_checks_verdicts_and_retraining_runs() -> None:
    progress = Progress()
    healthy = check("c1", "NoDrift", 612)
    drifted = check("c2", "Drift", 600, drifted=8)
    reached = [
        m
        for state in (
            obj("wine", phase="Pending"),
            monitor("InsufficientData", check("c0", "InsufficientData", 12)),
            monitor("Healthy", healthy),
            monitor("Healthy", healthy),
            monitor("Drifted", drifted),
            monitor("Drifted", drifted, "wine-retrain-c2"),
        )
        for m in progress.observe("DriftMonitor", state)
    ]
    assert [(m.mark, m.text) for m in reached] == [
        (Mark.NOTICE, "DriftMonitor wine check c0: InsufficientData, 12 samples"),
        (Mark.DONE, "DriftMonitor wine check c1: NoDrift, 612 samples, 0 of 13 features drifted"),
        (Mark.NOTICE, "DriftMonitor wine check c2: Drift, 600 samples, 8 of 13 features drifted"),
        (Mark.DONE, "DriftMonitor wine created TrainingRun wine-retrain-c2 (check c2)"),
    ]
    assert progress.checks == [("c0", "InsufficientData"), ("c1", "NoDrift"), ("c2", "Drift")]
    assert progress.healthy_checks() == 1


def test_a_failed_check_is_a_notice_not_the_end() -> None:
    failed = obj("wine", phase="Failed", conditions=ready("False", "CheckFailed", "job failed"))
    assert Progress().observe("DriftMonitor", failed) == [
        Milestone("DriftMonitor wine Failed: CheckFailed: job failed", Mark.NOTICE)
    ]


def test_the_loop_closes_when_the_retrained_version_serves_alone() -> None:
    progress = Progress()
    progress.observe("InferenceService", service(phase="Ready", stableVersion=1))
    progress.observe("ModelVersion", version("wine-v1", 1, phase="Ready"))
    progress.observe("TrainingRun", run("wine-1", phase="Succeeded", modelVersion="wine-v1"))
    drifted = check("c2", "Drift", 600, drifted=8)
    progress.observe("DriftMonitor", monitor("Drifted", drifted, "wine-retrain-c2"))
    progress.observe("TrainingRun", run("wine-retrain-c2", phase="Running"))
    assert progress.retrained_versions() == set()
    progress.observe(
        "TrainingRun", run("wine-retrain-c2", phase="Succeeded", modelVersion="wine-v2")
    )
    progress.observe("ModelVersion", version("wine-v2", 2, phase="Ready"))
    assert progress.retrained_versions() == {2}
    assert not progress.goal_reached(shift=True)
    progress.observe(
        "InferenceService",
        service(phase="Progressing", stableVersion=1, canaryVersion=2, canaryWeight=25),
    )
    assert not progress.loop_closed()
    progress.observe(
        "InferenceService",
        service(phase="Progressing", stableVersion=2, canaryVersion=2, canaryWeight=100),
    )
    assert not progress.loop_closed()
    progress.observe("InferenceService", service(phase="Ready", stableVersion=2))
    assert progress.loop_closed() and progress.goal_reached(shift=True)


def test_without_the_shift_the_goal_is_a_second_check_without_drift() -> None:
    progress = Progress()
    progress.observe("DriftMonitor", monitor("Healthy", check("c1", "NoDrift", 600)))
    assert not progress.goal_reached(shift=False)
    progress.observe("DriftMonitor", monitor("Drifted", check("c2", "Drift", 600, drifted=7)))
    assert not progress.goal_reached(shift=False)
    progress.observe("DriftMonitor", monitor("Healthy", check("c3", "NoDrift", 600)))
    assert progress.goal_reached(shift=False)


def kinds(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def test_overrides_scale_the_examples_timings_down_and_leave_the_originals() -> None:
    examples = manifests(EXAMPLES)
    original = copy.deepcopy(examples)
    changed = kinds(with_overrides(examples, DEMO_OVERRIDES))
    assert examples == original
    assert changed["Dataset"]["spec"]["refreshInterval"] == "15s"
    rollout = changed["InferenceService"]["spec"]["rollout"]
    assert rollout["steps"] and {s["pause"] for s in rollout["steps"]} == {"10s"}
    assert rollout["analysis"]["interval"] == "5s" and rollout["analysis"]["minRequests"] == 10
    monitor_spec = changed["DriftMonitor"]["spec"]
    assert monitor_spec["interval"] == "20s" and "schedule" not in monitor_spec
    assert monitor_spec["window"] == {"requests": 600} and monitor_spec["minSamples"] == 300
    assert monitor_spec["retrain"]["cooldown"] == "2m"
    assert monitor_spec["retrain"]["maxRunsPerDay"] == 3
    assert changed["TrainingRun"] == kinds(original)["TrainingRun"]


def test_overrides_remove_the_choices_they_replace() -> None:
    scheduled = {
        "kind": "DriftMonitor",
        "spec": {"schedule": "0 * * * *", "window": {"duration": "1h"}},
    }
    [changed] = with_overrides([scheduled], DEMO_OVERRIDES)
    assert changed["spec"]["interval"] == "20s" and "schedule" not in changed["spec"]
    assert changed["spec"]["window"] == {"requests": 600}


def test_the_overrides_are_described_in_one_line_without_removed_fields() -> None:
    line = describe_overrides(DEMO_OVERRIDES)
    assert line.startswith("Dataset refreshInterval 15s; InferenceService rollout.steps[].pause")
    assert "DriftMonitor interval 20s, window.requests 600, minSamples 300" in line
    assert "None" not in line and "schedule" not in line
