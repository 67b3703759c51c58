"""TrainingRun builder: wait for the Dataset, one Job, gates, then a ModelVersion."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from builders_fixtures import (
    CONFIG,
    DIGEST_A,
    DIGEST_B,
    DIGEST_C,
    NOW,
    NOW_TEXT,
    SHA_MODEL,
    SIGNATURE,
    condition,
    dataset_model,
    env_of,
    failed,
    observed_job,
    ready_condition,
    ready_dataset_status,
    succeeded,
    trainingrun_obj,
)

from gyre_operator.api import Dataset
from gyre_operator.api.training import Algorithm, Gate
from gyre_operator.builders.jobs import JobState, ObservedJob
from gyre_operator.builders.plan import NORMAL, WARNING, EventRecord, Plan
from gyre_operator.builders.trainingrun import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    TrainingObserved,
    Verdict,
    build_trainingrun,
    builtin_metrics,
    dataset_input_path,
    evaluate_gates,
    model_version_name,
    next_version,
    output_uri,
    registering,
    training_job_name,
    unavailable_versions,
    waits_for,
)
from gyre_operator.config import OperatorConfig

JOB = "iris-run-train"
STARTED = "2026-01-02T03:01:00Z"
CUSTOM = {
    "image": "me/trainer:2",
    "command": ["python", "train.py"],
    "args": ["--epochs", "3"],
    "env": [{"name": "LOG_LEVEL", "value": "debug"}],
    "hyperparameters": {"lr": 0.1},
}
METRICS = {"accuracy": 0.95, "f1_macro": 0.94, "log_loss": 0.2}
RESULT: dict[str, Any] = {
    "modelUri": "s3://gyre/artifacts/models/iris/iris-run/model.onnx",
    "sha256": SHA_MODEL,
    "metrics": METRICS,
    "signature": SIGNATURE,
    "features": ["sepal_length", "species_group"],
}


def ready(digest: str = DIGEST_A, **fields: Any) -> Dataset:
    return dataset_model("iris", status=ready_dataset_status(digest), **fields)


def build(
    obj: dict[str, Any],
    observed: TrainingObserved,
    config: OperatorConfig = CONFIG,
) -> Plan:
    before = copy.deepcopy(obj)
    dataset_before = observed.dataset.model_dump() if observed.dataset else None
    plan = build_trainingrun(obj, observed, config, NOW)
    assert obj == before, "the builder changed its input"
    assert (observed.dataset.model_dump() if observed.dataset else None) == dataset_before
    return plan


def running_status(digest: str = DIGEST_A) -> dict[str, Any]:
    return build(trainingrun_obj(), TrainingObserved(dataset=ready(digest))).status


def job(
    state: JobState = JobState.ACTIVE,
    *,
    result: Any = None,
    digest: str = DIGEST_A,
    condition_reason: str = "",
    condition_message: str = "",
) -> ObservedJob:
    return observed_job(
        JOB,
        state,
        result=result,
        annotations={"gyre.dev/dataset-digest": digest},
        condition_reason=condition_reason,
        condition_message=condition_message,
        start_time=STARTED,
        completion_time="2026-01-02T03:03:00Z" if state is not JobState.ACTIVE else None,
    )


def done(result: dict[str, Any] | None = RESULT, **observed: Any) -> TrainingObserved:
    data = succeeded(result) if result is not None else None
    return TrainingObserved(dataset=ready(), job=job(JobState.SUCCEEDED, result=data), **observed)


def container(plan: Plan, name: str, init: bool = False) -> dict[str, Any]:
    (child,) = plan.children
    pod = child["spec"]["template"]["spec"]
    found = [c for c in pod["initContainers" if init else "containers"] if c["name"] == name]
    assert len(found) == 1
    return found[0]


# ---- small pure helpers ----


@pytest.mark.parametrize(
    ("algorithm", "metrics"),
    [
        (Algorithm.LOGISTIC_REGRESSION, CLASSIFICATION_METRICS),
        (Algorithm.RANDOM_FOREST_CLASSIFIER, CLASSIFICATION_METRICS),
        (Algorithm.GRADIENT_BOOSTING_CLASSIFIER, CLASSIFICATION_METRICS),
        (Algorithm.LINEAR_REGRESSION, REGRESSION_METRICS),
        (Algorithm.RIDGE, REGRESSION_METRICS),
        (Algorithm.RANDOM_FOREST_REGRESSOR, REGRESSION_METRICS),
        (Algorithm.GRADIENT_BOOSTING_REGRESSOR, REGRESSION_METRICS),
    ],
)
def test_builtin_metrics(algorithm: Algorithm, metrics: tuple[str, ...]) -> None:
    assert builtin_metrics(algorithm) == metrics


@pytest.mark.parametrize(("taken", "expected"), [((), 1), ((1,), 2), ((3, 1, 2), 4), ((1, 7), 8)])
def test_next_version(taken: tuple[int, ...], expected: int) -> None:
    assert next_version(taken) == expected


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("s3://gyre/artifacts", "s3://gyre/artifacts/models/iris/iris-run/"),
        ("s3://gyre/artifacts/", "s3://gyre/artifacts/models/iris/iris-run/"),
        ("file:///var/lib/gyre", "file:///var/lib/gyre/models/iris/iris-run/"),
    ],
)
def test_output_uri(root: str, expected: str) -> None:
    assert output_uri(OperatorConfig(artifact_root=root), "iris", "iris-run") == expected


@pytest.mark.parametrize(
    ("gates", "metrics", "expected"),
    [
        ([], {}, Verdict()),
        ([{"metric": "accuracy", "min": 0.9}], {"accuracy": 0.9}, Verdict()),  # bound included
        (
            [{"metric": "accuracy", "min": 0.9}],
            {"accuracy": 0.85},
            Verdict("GateNotMet", "accuracy 0.85 < min 0.9"),
        ),
        ([{"metric": "rmse", "max": 1.5}], {"rmse": 1.5}, Verdict()),
        (
            [{"metric": "rmse", "max": 1.5}],
            {"rmse": 1.523456},
            Verdict("GateNotMet", "rmse 1.523 > max 1.5"),
        ),
        ([{"metric": "r2", "min": 0.5, "max": 0.99}], {"r2": 0.7}, Verdict()),
        (
            [{"metric": "r2", "min": 0.5, "max": 0.99}],
            {"r2": 0.995},
            Verdict("GateNotMet", "r2 0.995 > max 0.99"),
        ),
        # The first violated gate decides.
        (
            [{"metric": "accuracy", "min": 0.99}, {"metric": "log_loss", "max": 0.1}],
            METRICS,
            Verdict("GateNotMet", "accuracy 0.95 < min 0.99"),
        ),
        (
            [{"metric": "auc", "min": 0.8}],
            {"f1": 0.9, "accuracy": 0.9},
            Verdict(
                "InvalidSpec",
                "gate on metric 'auc', which the trainer did not report (reported: accuracy, f1)",
            ),
        ),
        (
            [{"metric": "auc", "min": 0.8}],
            {},
            Verdict(
                "InvalidSpec",
                "gate on metric 'auc', which the trainer did not report (reported: none)",
            ),
        ),
    ],
)
def test_evaluate_gates(
    gates: list[dict[str, Any]], metrics: dict[str, float], expected: Verdict
) -> None:
    assert evaluate_gates([Gate.model_validate(g) for g in gates], metrics) == expected


# ---- waiting for the Dataset ----


def test_dataset_missing_waits_with_one_event() -> None:
    first = build(trainingrun_obj(generation=2), TrainingObserved())
    message = "Dataset iris does not exist"
    assert first.children == ()
    assert first.status["phase"] == "Pending"
    assert first.status["observedGeneration"] == 2
    assert condition(first.status) == {
        "type": "Ready",
        "status": "False",
        "reason": "DatasetNotFound",
        "message": message,
        "observedGeneration": 2,
        "lastTransitionTime": NOW_TEXT,
    }
    assert first.events == (EventRecord(WARNING, "DatasetNotFound", message),)
    assert first.requeue_after == 60.0
    again = build(trainingrun_obj(generation=2, status=first.status), TrainingObserved())
    assert again.events == ()
    assert again.status == first.status
    assert again.requeue_after == 60.0


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (None, "Dataset iris is Pending, not Ready"),
        ({"phase": "Profiling"}, "Dataset iris is Profiling, not Ready"),
        ({"phase": "Failed"}, "Dataset iris is Failed, not Ready"),
        ({}, "Dataset iris is Pending, not Ready"),
    ],
)
def test_dataset_not_ready_waits(status: dict[str, Any] | None, message: str) -> None:
    dataset = dataset_model("iris", status=status)
    plan = build(trainingrun_obj(), TrainingObserved(dataset=dataset))
    assert plan.children == ()
    assert plan.status["phase"] == "Pending"
    assert condition(plan.status)["reason"] == "DatasetNotReady"
    assert condition(plan.status)["message"] == message
    assert plan.events == (EventRecord(WARNING, "DatasetNotReady", message),)


def test_a_new_wait_reason_posts_a_new_event() -> None:
    first = build(trainingrun_obj(), TrainingObserved())
    profiling = dataset_model("iris", status={"phase": "Profiling"})
    plan = build(trainingrun_obj(status=first.status), TrainingObserved(dataset=profiling))
    assert [e.reason for e in plan.events] == ["DatasetNotReady"]
    assert condition(plan.status)["lastTransitionTime"] == NOW_TEXT


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (None, "Dataset iris does not exist"),
        (
            dataset_model("iris", status={"phase": "Profiling"}),
            "Dataset iris is Profiling, not Ready",
        ),
    ],
)
def test_waiting_past_the_deadline_fails(dataset: Dataset | None, message: str) -> None:
    obj = trainingrun_obj(activeDeadlineSeconds=245)  # created 245 s before NOW
    plan = build(obj, TrainingObserved(dataset=dataset))
    full = f"{message} after activeDeadlineSeconds 245"
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    assert plan.status["completionTime"] == NOW_TEXT
    assert condition(plan.status)["reason"] == "DatasetNotReady"
    assert condition(plan.status)["message"] == full
    assert plan.events == (EventRecord(WARNING, "DatasetNotReady", full),)
    assert plan.requeue_after is None


@pytest.mark.parametrize(
    ("deadline", "requeue"),
    [
        (None, 60.0),
        (1000, 60.0),
        (275, 30.0),  # created 245 s before NOW: look again when the deadline passes
        (246, 1.0),
    ],
)
def test_waiting_within_the_deadline_looks_again_by_the_deadline(
    deadline: int | None, requeue: float
) -> None:
    fields = {"activeDeadlineSeconds": deadline} if deadline else {}
    plan = build(trainingrun_obj(**fields), TrainingObserved())
    assert plan.status["phase"] == "Pending"
    assert plan.requeue_after == pytest.approx(requeue)


@pytest.mark.parametrize(
    ("pinned", "versions", "phase", "starts"),
    [
        (DIGEST_B, [DIGEST_A, DIGEST_B], "Ready", True),
        (DIGEST_B, [DIGEST_B], "Profiling", True),  # a pinned version needs no Ready Dataset
        (DIGEST_B, [DIGEST_B], "Failed", True),
        (DIGEST_C, [DIGEST_A, DIGEST_B], "Ready", False),
    ],
)
def test_pinned_digest(pinned: str, versions: list[str], phase: str, starts: bool) -> None:
    status = ready_dataset_status(DIGEST_A)
    status["phase"] = phase
    status["versions"] = [{**status["currentVersion"], "digest": d} for d in versions]
    dataset = dataset_model("iris", status=status)
    obj = trainingrun_obj(datasetRef={"name": "iris", "digest": pinned})
    plan = build(obj, TrainingObserved(dataset=dataset))
    if starts:
        assert plan.status["phase"] == "Running"
        assert plan.status["datasetDigest"] == pinned
        assert plan.children[0]["metadata"]["annotations"] == {"gyre.dev/dataset-digest": pinned}
    else:
        assert plan.children == ()
        assert plan.status["phase"] == "Pending"
        assert condition(plan.status)["reason"] == "DatasetNotReady"
        assert condition(plan.status)["message"] == f"Dataset iris has no profiled version {pinned}"


# ---- specs the operator cannot run ----


@pytest.mark.parametrize(
    "schema",
    [None, {"features": [{"name": "x", "type": "numeric"}]}],
)
def test_builtin_trainer_needs_a_target(schema: dict[str, Any] | None) -> None:
    dataset = dataset_model("iris", status=ready_dataset_status(), schema=schema)
    plan = build(trainingrun_obj(), TrainingObserved(dataset=dataset))
    message = "the built-in trainer needs spec.schema.target on Dataset iris"
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    assert condition(plan.status)["reason"] == "InvalidSpec"
    assert condition(plan.status)["message"] == message
    assert plan.events == (EventRecord(WARNING, "InvalidSpec", message),)


@pytest.mark.parametrize(
    ("algorithm", "gate", "reported"),
    [
        ("logistic_regression", "rmse", ", ".join(CLASSIFICATION_METRICS)),
        ("ridge", "accuracy", "rmse, mae, r2"),
        ("gradient_boosting_regressor", "f1", "rmse, mae, r2"),
    ],
)
def test_gate_on_a_metric_the_algorithm_does_not_report(
    algorithm: str, gate: str, reported: str
) -> None:
    obj = trainingrun_obj(trainer={"algorithm": algorithm}, gates=[{"metric": gate, "min": 0.5}])
    plan = build(obj, TrainingObserved(dataset=ready()))
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    assert condition(plan.status)["reason"] == "InvalidSpec"
    assert condition(plan.status)["message"] == (
        f"gate on metric {gate!r}, which {algorithm} does not report (reported: {reported})"
    )


def test_custom_trainer_needs_no_schema_and_may_gate_on_anything() -> None:
    dataset = dataset_model("iris", status=ready_dataset_status(), schema=None)
    obj = trainingrun_obj(trainer=CUSTOM, gates=[{"metric": "my_score", "min": 0.5}])
    plan = build(obj, TrainingObserved(dataset=dataset))
    assert plan.status["phase"] == "Running"
    init = container(plan, "trainer", init=True)
    assert env_of(init)["GYRE_FEATURES"] == "[]"
    assert env_of(init)["GYRE_TARGET"] == ""
    assert "--features" not in container(plan, "publish")["args"]


# ---- starting the Job ----


def test_builtin_trainer_job() -> None:
    obj = trainingrun_obj(
        generation=3,
        trainer={
            "algorithm": "random_forest_classifier",
            "hyperparameters": {"n_estimators": 50, "max_depth": 4},
            "validationFraction": 0.25,
            "seed": 7,
        },
        resources={"limits": {"cpu": "2", "memory": "4Gi"}},
        backoffLimit=3,
        gates=[{"metric": "accuracy", "min": 0.9}],
    )
    dataset = ready(source={"uri": "s3://data/iris.csv", "secretRef": {"name": "s3-creds"}})
    plan = build(obj, TrainingObserved(dataset=dataset))
    (child,) = plan.children
    assert child["metadata"]["name"] == JOB
    assert child["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "gyre",
        "app.kubernetes.io/component": "train",
        "gyre.dev/owner-kind": "TrainingRun",
        "gyre.dev/model": "iris",
        "gyre.dev/training-run-uid": "uid-iris-run",
    }
    assert child["spec"]["template"]["metadata"]["labels"] == child["metadata"]["labels"]
    assert child["metadata"]["annotations"] == {"gyre.dev/dataset-digest": DIGEST_A}
    assert child["metadata"]["ownerReferences"][0]["kind"] == "TrainingRun"
    assert child["spec"]["backoffLimit"] == 3
    assert "activeDeadlineSeconds" not in child["spec"]
    assert "ttlSecondsAfterFinished" not in child["spec"]
    pod = child["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert "volumes" not in pod
    main = container(plan, "train")
    assert main["image"] == "gyre-runtime:test"
    assert main["args"] == [
        "train",
        "--run", "iris-run",
        "--model", "iris",
        "--output-uri", "s3://gyre/artifacts/models/iris/iris-run/",
        "--dataset-uri", "s3://data/iris.csv",
        "--dataset-digest", DIGEST_A,
        "--features", json.dumps(["sepal_length", "species_group"]),
        "--format", "csv",
        "--algorithm", "random_forest_classifier",
        "--target", "species",
        "--hyperparameters", json.dumps({"n_estimators": 50, "max_depth": 4}),
        "--validation-fraction", "0.25",
        "--seed", "7",
    ]  # fmt: skip
    assert main["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert main["resources"] == {"limits": {"cpu": "2", "memory": "4Gi"}}
    # The run's status.
    assert plan.status["phase"] == "Running"
    assert plan.status["datasetDigest"] == DIGEST_A
    assert plan.status["jobName"] == JOB
    assert plan.status["startTime"] == NOW_TEXT
    assert plan.status["observedGeneration"] == 3
    assert condition(plan.status) == {
        "type": "Ready",
        "status": "False",
        "reason": "Training",
        "message": f"training Job {JOB} is running",
        "observedGeneration": 3,
        "lastTransitionTime": NOW_TEXT,
    }
    assert plan.events == (
        EventRecord(NORMAL, "Started", f"created training Job {JOB} on {DIGEST_A[:12]}"),
    )
    assert plan.requeue_after is None


def test_builtin_defaults_in_args() -> None:
    plan = build(trainingrun_obj(), TrainingObserved(dataset=ready()))
    args = container(plan, "train")["args"]
    assert args[args.index("--hyperparameters") + 1] == "{}"
    assert args[args.index("--validation-fraction") + 1] == "0.2"
    assert args[args.index("--seed") + 1] == "0"
    assert plan.children[0]["spec"]["backoffLimit"] == 1


def test_custom_trainer_job() -> None:
    obj = trainingrun_obj(trainer=CUSTOM, resources={"requests": {"cpu": "500m"}})
    dataset = ready(
        source={"uri": "pvc://data/iris.csv", "secretRef": {"name": "creds"}}, format="parquet"
    )
    plan = build(obj, TrainingObserved(dataset=dataset))
    pod = plan.children[0]["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "pvc-0", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "shared-0", "emptyDir": {}},
        {"name": "shared-1", "emptyDir": {}},
    ]
    mounts = [
        {"name": "pvc-0", "mountPath": "/mnt/gyre/pvc/data"},
        {"name": "shared-0", "mountPath": "/gyre/input"},
        {"name": "shared-1", "mountPath": "/gyre/output"},
    ]
    # First the pinned data set is fetched (digest checked), then the user's trainer runs.
    assert [c["name"] for c in pod["initContainers"]] == ["fetch", "trainer"]
    fetch = container(plan, "fetch", init=True)
    assert fetch["image"] == "gyre-runtime:test"
    assert fetch["args"] == [
        "fetch",
        "--uri", "pvc://data/iris.csv",
        "--sha256", DIGEST_A,
        "--output", "/gyre/input/iris.csv",
    ]  # fmt: skip
    assert fetch["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert fetch["volumeMounts"] == mounts
    trainer = container(plan, "trainer", init=True)
    assert trainer["image"] == "me/trainer:2"
    assert trainer["command"] == ["python", "train.py"]
    assert trainer["args"] == ["--epochs", "3"]
    assert trainer["env"] == [
        {"name": "GYRE_PVC_DATA", "value": "/mnt/gyre/pvc/data"},
        {"name": "GYRE_DATASET_PATH", "value": "/gyre/input/iris.csv"},
        {"name": "GYRE_TRAINING_RUN", "value": "iris-run"},
        {"name": "GYRE_MODEL", "value": "iris"},
        {"name": "GYRE_DATASET_URI", "value": "pvc://data/iris.csv"},
        {"name": "GYRE_DATASET_FORMAT", "value": "parquet"},
        {"name": "GYRE_DATASET_DIGEST", "value": DIGEST_A},
        {"name": "GYRE_FEATURES", "value": '["sepal_length", "species_group"]'},
        {"name": "GYRE_TARGET", "value": "species"},
        {"name": "GYRE_HYPERPARAMETERS", "value": '{"lr": 0.1}'},
        {"name": "GYRE_VALIDATION_FRACTION", "value": "0.2"},
        {"name": "GYRE_SEED", "value": "0"},
        {"name": "GYRE_OUTPUT_DIR", "value": "/gyre/output"},
        {"name": "LOG_LEVEL", "value": "debug"},
    ]
    # The user's trainer reads the local copy: the data set's credentials stay with fetch.
    assert "envFrom" not in trainer
    assert trainer["resources"] == {"requests": {"cpu": "500m"}}
    assert trainer["volumeMounts"] == mounts
    main = container(plan, "publish")
    assert main["image"] == "gyre-runtime:test"
    assert main["args"] == [
        "publish",
        "--run", "iris-run",
        "--model", "iris",
        "--output-uri", "s3://gyre/artifacts/models/iris/iris-run/",
        "--dataset-uri", "pvc://data/iris.csv",
        "--dataset-digest", DIGEST_A,
        "--features", '["sepal_length", "species_group"]',
        "--output-dir", "/gyre/output",
    ]  # fmt: skip
    assert main["volumeMounts"] == mounts
    assert "envFrom" not in main
    assert "resources" not in main


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("s3://data/iris.csv", "/gyre/input/iris.csv"),
        ("pvc://data/sets/iris.parquet", "/gyre/input/iris.parquet"),
        ("s3://data/iris/", "/gyre/input/data"),  # a prefix: a directory
        ("https://host/files/iris.csv", "/gyre/input/iris.csv"),
    ],
)
def test_dataset_input_path(uri: str, path: str) -> None:
    assert dataset_input_path(uri) == path


@pytest.mark.parametrize(
    ("deadline", "expected"),
    [
        (None, None),
        (1000, 755),  # created 245 s before NOW
        (246, 1),
    ],
)
def test_remaining_deadline_on_the_job(deadline: int | None, expected: int | None) -> None:
    fields = {"activeDeadlineSeconds": deadline} if deadline else {}
    plan = build(trainingrun_obj(**fields), TrainingObserved(dataset=ready()))
    assert plan.children[0]["spec"].get("activeDeadlineSeconds") == expected


@pytest.mark.parametrize("deadline", [245, 10])
def test_dataset_ready_after_the_deadline_fails_without_a_job(deadline: int) -> None:
    plan = build(trainingrun_obj(activeDeadlineSeconds=deadline), TrainingObserved(dataset=ready()))
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    ready_condition = plan.status["conditions"][0]
    assert ready_condition["reason"] == "DeadlineExceeded"
    assert ready_condition["message"] == (
        f"activeDeadlineSeconds {deadline} passed before training began"
    )


# ---- following the Job ----


def test_job_active_is_running() -> None:
    obj = trainingrun_obj(status=running_status())
    plan = build(obj, TrainingObserved(dataset=ready(), job=job()))
    assert plan.children == ()
    assert plan.events == ()
    assert plan.status == running_status()
    assert plan.requeue_after is None


def test_job_found_before_the_status_was_written() -> None:
    # The Job exists but the status does not know it (a lost status write): follow the Job.
    plan = build(trainingrun_obj(), TrainingObserved(dataset=ready(DIGEST_B), job=job()))
    assert plan.children == ()
    assert plan.status["phase"] == "Running"
    assert plan.status["jobName"] == JOB
    assert plan.status["startTime"] == STARTED
    # The digest is the one the Job was created with, not the Dataset's current one.
    assert plan.status["datasetDigest"] == DIGEST_A
    assert condition(plan.status)["reason"] == "Training"


def test_digest_from_the_job_wins_over_the_status() -> None:
    obj = trainingrun_obj(status=running_status(DIGEST_B))
    plan = build(obj, TrainingObserved(dataset=ready(DIGEST_C), job=job(digest=DIGEST_A)))
    assert plan.status["datasetDigest"] == DIGEST_A
    assert plan.status["startTime"] == NOW_TEXT  # the status's own start time is kept


@pytest.mark.parametrize(
    ("observed", "reason", "message"),
    [
        (
            job(
                JobState.FAILED,
                condition_reason="DeadlineExceeded",
                condition_message="Job was active longer than specified deadline",
            ),
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ),
        (
            job(
                JobState.FAILED,
                result=failed("InvalidHyperparameter", "C must be > 0"),
                condition_reason="BackoffLimitExceeded",
                condition_message="Job has reached the specified backoff limit",
            ),
            "JobFailed",
            "InvalidHyperparameter: C must be > 0",
        ),
        (
            job(
                JobState.FAILED,
                condition_reason="BackoffLimitExceeded",
                condition_message="Job has reached the specified backoff limit",
            ),
            "JobFailed",
            "Job has reached the specified backoff limit",
        ),
    ],
)
def test_job_failed(observed: ObservedJob, reason: str, message: str) -> None:
    obj = trainingrun_obj(status=running_status())
    plan = build(obj, TrainingObserved(dataset=ready(), job=observed))
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    assert plan.status["completionTime"] == NOW_TEXT
    assert plan.status["jobName"] == JOB
    assert plan.status["datasetDigest"] == DIGEST_A
    assert condition(plan.status)["reason"] == reason
    assert condition(plan.status)["message"] == message
    assert condition(plan.status)["lastTransitionTime"] == NOW_TEXT
    assert plan.events == (EventRecord(WARNING, reason, message),)


def test_succeeded_registers_a_model_version() -> None:
    obj = trainingrun_obj(
        trainer={"algorithm": "logistic_regression", "hyperparameters": {"C": 0.5}},
        gates=[{"metric": "accuracy", "min": 0.9}],
        status=running_status(),
    )
    plan = build(obj, done(taken_versions=(1, 2)))
    assert plan.children == (
        {
            "apiVersion": "gyre.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {
                "name": "iris-v3",
                "namespace": "ml",
                "labels": {
                    "app.kubernetes.io/managed-by": "gyre",
                    "gyre.dev/model": "iris",
                    "gyre.dev/training-run-uid": "uid-iris-run",
                },
                "annotations": {
                    "gyre.dev/training-run": "iris-run",
                    "gyre.dev/verified-sha256": SHA_MODEL,
                },
            },
            "spec": {
                "model": "iris",
                "version": 3,
                "artifact": {"uri": RESULT["modelUri"], "format": "onnx", "sha256": SHA_MODEL},
                "signature": SIGNATURE,
                "metrics": METRICS,
                "lineage": {
                    "trainingRun": "iris-run",
                    "dataset": "iris",
                    "datasetDigest": DIGEST_A,
                    "algorithm": "logistic_regression",
                    "hyperparameters": {"C": 0.5},
                    "trainerImage": "gyre-runtime:test",
                    "features": ["sepal_length", "species_group"],
                },
            },
        },
    )
    assert plan.status["phase"] == "Succeeded"
    assert plan.status["modelVersion"] == "iris-v3"
    assert plan.status["metrics"] == METRICS
    assert plan.status["artifactUri"] == RESULT["modelUri"]
    assert plan.status["completionTime"] == NOW_TEXT
    assert condition(plan.status) == {
        "type": "Ready",
        "status": "True",
        "reason": "Succeeded",
        "message": "registered ModelVersion iris-v3",
        "observedGeneration": 1,
        "lastTransitionTime": NOW_TEXT,
    }
    assert plan.events == (
        EventRecord(NORMAL, "ModelRegistered", "registered ModelVersion iris-v3"),
    )


def test_custom_trainer_lineage_and_minimal_result() -> None:
    obj = trainingrun_obj(trainer=CUSTOM, status=running_status())
    result = {"modelUri": RESULT["modelUri"], "sha256": SHA_MODEL, "metrics": {"score": 3}}
    plan = build(obj, done(result))
    (manifest,) = plan.children
    assert manifest["metadata"]["name"] == "iris-v1"
    assert manifest["spec"]["metrics"] == {"score": 3.0}
    assert "signature" not in manifest["spec"]
    assert manifest["spec"]["lineage"] == {
        "trainingRun": "iris-run",
        "dataset": "iris",
        "datasetDigest": DIGEST_A,
        "algorithm": "custom",
        "hyperparameters": {"lr": 0.1},
        "trainerImage": "me/trainer:2",
    }


def test_empty_metrics_register_without_metrics() -> None:
    plan = build(trainingrun_obj(status=running_status()), done({**RESULT, "metrics": {}}))
    assert plan.status["phase"] == "Succeeded"
    assert "metrics" not in plan.status
    assert "metrics" not in plan.children[0]["spec"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "high"])
def test_metrics_that_are_not_finite_numbers_are_no_valid_result(value: object) -> None:
    result = {**RESULT, "metrics": {"accuracy": value}}
    plan = build(trainingrun_obj(status=running_status()), done(result))
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    assert plan.status["conditions"][0]["reason"] == "JobFailed"


def test_already_registered_succeeds_without_a_new_version() -> None:
    obj = trainingrun_obj(status=running_status())
    plan = build(obj, done(registered="iris-v4", taken_versions=(1, 2, 3, 4)))
    assert plan.children == ()
    assert plan.status["phase"] == "Succeeded"
    assert plan.status["modelVersion"] == "iris-v4"
    assert plan.events == (
        EventRecord(NORMAL, "ModelRegistered", "registered ModelVersion iris-v4"),
    )


@pytest.mark.parametrize(
    ("gates", "reason", "message"),
    [
        ([{"metric": "accuracy", "min": 0.96}], "GateNotMet", "accuracy 0.95 < min 0.96"),
        ([{"metric": "log_loss", "max": 0.15}], "GateNotMet", "log_loss 0.2 > max 0.15"),
        (
            [{"metric": "accuracy", "min": 0.9}, {"metric": "f1_macro", "min": 0.99}],
            "GateNotMet",
            "f1_macro 0.94 < min 0.99",
        ),
        ([{"metric": "accuracy", "min": 0.9, "max": 1.0}], None, ""),
    ],
)
def test_gates(gates: list[dict[str, Any]], reason: str | None, message: str) -> None:
    obj = trainingrun_obj(gates=gates, status=running_status())
    plan = build(obj, done())
    if reason is None:
        assert plan.status["phase"] == "Succeeded"
        assert [c["kind"] for c in plan.children] == ["ModelVersion"]
        return
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    assert plan.status["metrics"] == METRICS  # kept, to show how far off it was
    assert plan.status["artifactUri"] == RESULT["modelUri"]
    assert "modelVersion" not in plan.status
    assert condition(plan.status)["reason"] == reason
    assert condition(plan.status)["message"] == message
    assert plan.events == (EventRecord(WARNING, reason, message),)


def test_gate_on_a_metric_a_custom_trainer_did_not_report() -> None:
    obj = trainingrun_obj(
        trainer=CUSTOM, gates=[{"metric": "auc", "min": 0.8}], status=running_status()
    )
    plan = build(obj, done({**RESULT, "metrics": {"f1": 0.9}}))
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    assert condition(plan.status)["reason"] == "InvalidSpec"
    assert condition(plan.status)["message"] == (
        "gate on metric 'auc', which the trainer did not report (reported: f1)"
    )


@pytest.mark.parametrize(
    "result",
    [
        None,
        {},
        {k: v for k, v in RESULT.items() if k != "metrics"},
        {k: v for k, v in RESULT.items() if k != "modelUri"},
        {k: v for k, v in RESULT.items() if k != "sha256"},
        {**RESULT, "metrics": [0.9]},
        {**RESULT, "metrics": {"accuracy": "high"}},
        {**RESULT, "metrics": {"accuracy": None}},
        {**RESULT, "modelUri": ""},
    ],
)
def test_succeeded_without_a_valid_result_fails(result: dict[str, Any] | None) -> None:
    # A gate on a metric is not what fails when the result itself is missing.
    obj = trainingrun_obj(gates=[{"metric": "accuracy", "min": 0.5}], status=running_status())
    plan = build(obj, done(result))
    message = f"training Job {JOB} reported no valid result"
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    assert condition(plan.status)["reason"] == "JobFailed"
    assert condition(plan.status)["message"] == message
    assert plan.events == (EventRecord(WARNING, "JobFailed", message),)


@pytest.mark.parametrize(
    ("result", "where"),
    [
        ({**RESULT, "signature": {"inputs": [], "outputs": []}}, "signature.inputs"),
        ({**RESULT, "signature": "float[4] -> int"}, "signature"),
        ({**RESULT, "sha256": "not-hex"}, "artifact.sha256"),
        ({**RESULT, "modelUri": "/local/path/model.onnx"}, "artifact.uri"),
        ({**RESULT, "features": "sepal_length"}, "lineage.features"),
    ],
)
def test_invalid_trainer_result_fails(result: dict[str, Any], where: str) -> None:
    plan = build(trainingrun_obj(status=running_status()), done(result))
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    assert condition(plan.status)["reason"] == "JobFailed"
    message = condition(plan.status)["message"]
    # The place in the ModelVersion spec the result would have filled, then pydantic's words.
    assert message.startswith(f"invalid trainer result: {where}: ")
    assert len(message) > len(f"invalid trainer result: {where}: ")
    assert [e.reason for e in plan.events] == ["JobFailed"]


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_terminal_run_is_left_alone(phase: str) -> None:
    status = {
        **running_status(),
        "phase": phase,
        "completionTime": "2026-01-02T03:03:00Z",
        "conditions": [ready_condition("True" if phase == "Succeeded" else "False", phase)],
    }
    obj = trainingrun_obj(status=status)
    for observed in (
        TrainingObserved(),
        done(),
        TrainingObserved(dataset=ready(), job=job(JobState.FAILED)),
    ):
        plan = build(obj, observed)
        assert plan == Plan(status=status)


def test_start_is_deterministic() -> None:
    observed = TrainingObserved(dataset=ready())
    assert build(trainingrun_obj(), observed) == build(trainingrun_obj(), observed)
    assert training_job_name("iris-run") == JOB


# ---- version numbers ----


@pytest.mark.parametrize(
    ("versions", "held_names", "expected"),
    [
        ((), set(), ()),
        ((1, 2, 7), set(), (1, 2, 7)),
        # iris-v8 and iris-v9 belong to something else: the next free number is 10.
        ((1, 2, 7), {"iris-v8", "iris-v9", "iris-v3"}, (1, 2, 7, 8, 9)),
        ((), {"iris-v1"}, (1,)),
    ],
)
def test_unavailable_versions(
    versions: tuple[int, ...], held_names: set[str], expected: tuple[int, ...]
) -> None:
    assert unavailable_versions("iris", versions, held_names.__contains__) == expected


def test_registering_names_the_version_a_plan_creates() -> None:
    plan = build(trainingrun_obj(status=running_status()), done(taken_versions=(1, 2)))
    assert registering(plan) == 3
    assert plan.children[0]["metadata"]["name"] == model_version_name("iris", 3) == "iris-v3"
    assert (
        registering(build(trainingrun_obj(status=running_status()), done(registered="x"))) is None
    )


@pytest.mark.parametrize(
    ("namespace", "dataset", "status", "waits"),
    [
        ("ml", "iris", None, True),
        ("ml", "iris", {"phase": "Pending"}, True),
        ("ml", "iris", {"phase": "Running", "jobName": JOB}, False),  # started
        ("ml", "rose", None, False),  # another Dataset
        ("other", "iris", None, False),  # another namespace
    ],
)
def test_waits_for(
    namespace: str, dataset: str, status: dict[str, Any] | None, waits: bool
) -> None:
    assert waits_for(trainingrun_obj(status=status), namespace, dataset) is waits
