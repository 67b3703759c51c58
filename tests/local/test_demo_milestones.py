"""The demo's milestones, read from hand-made status objects as the operator will write them."""

from __future__ import annotations

import io
import time
from typing import Any

from rich.console import Console

from gyre_local.demo import report_milestones
from gyre_local.milestones import Milestone, milestone, milestones

DIGEST = "9f2c1d7c4b0d5b3e2a8f6e1c7d9b0a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b"


def obj(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"}, "status": status}


def ready(status: str, reason: str, message: str) -> list[dict[str, str]]:
    return [{"type": "Ready", "status": status, "reason": reason, "message": message}]


DATASET_READY = obj("wine", phase="Ready", currentVersion={"digest": DIGEST, "rows": 178})
RUN_SUCCEEDED = obj(
    "wine-1", phase="Succeeded", metrics={"accuracy": 0.97777, "f1_macro": 0.9761, "log_loss": 0.1}
)
MODEL_READY = obj("wine-v1", phase="Ready")


def test_dataset_ready_shows_the_short_digest_and_rows() -> None:
    assert milestone("Dataset", DATASET_READY) == Milestone(
        "Dataset", "wine", "Dataset wine Ready (version 9f2c1d7c4b0d, 178 rows)"
    )


def test_training_run_succeeded_shows_accuracy_and_f1_macro_when_present() -> None:
    assert milestone("TrainingRun", RUN_SUCCEEDED) == Milestone(
        "TrainingRun", "wine-1", "TrainingRun wine-1 Succeeded (accuracy 0.978, f1_macro 0.976)"
    )
    bare = milestone("TrainingRun", obj("wine-1", phase="Succeeded"))
    assert bare is not None and bare.text == "TrainingRun wine-1 Succeeded"


def test_model_version_ready() -> None:
    assert milestone("ModelVersion", MODEL_READY) == Milestone(
        "ModelVersion", "wine-v1", "ModelVersion wine-v1 Ready"
    )


def test_intermediate_phases_are_no_milestone() -> None:
    assert milestone("Dataset", obj("wine", phase="Profiling")) is None
    assert milestone("TrainingRun", obj("wine-1", phase="Running")) is None
    assert milestone("TrainingRun", obj("wine-1", phase="Ready")) is None
    assert milestone("ModelVersion", {"metadata": {"name": "wine-v1"}}) is None


def test_failed_phase_is_a_failure_with_the_ready_reason_and_message() -> None:
    failed = obj(
        "wine",
        phase="Failed",
        conditions=ready("False", "ValidationFailed", "column target is missing"),
    )
    assert milestone("Dataset", failed) == Milestone(
        "Dataset",
        "wine",
        "Dataset wine Failed: ValidationFailed: column target is missing",
        failed=True,
    )


def test_stream_yields_each_targets_first_milestone_and_ends_when_all_are_reached() -> None:
    events = [
        ("Dataset", obj("wine", phase="Profiling")),
        ("Dataset", obj("other", phase="Ready")),
        ("Dataset", DATASET_READY),
        ("Dataset", DATASET_READY),
        ("TrainingRun", obj("wine-1", phase="Running")),
        ("TrainingRun", RUN_SUCCEEDED),
        ("ModelVersion", obj("wine-notebook-v1", phase="Ready")),
        ("ModelVersion", MODEL_READY),
    ]
    reached = [m.name for m in milestones(iter(events))]
    assert reached == ["wine", "wine-1", "wine-v1"]


def test_stream_stops_at_the_first_failure() -> None:
    failed = obj("wine-1", phase="Failed", conditions=ready("False", "GateNotMet", "accuracy 0.5"))
    events = iter(
        [("Dataset", DATASET_READY), ("TrainingRun", failed), ("ModelVersion", MODEL_READY)]
    )
    reached = list(milestones(events))
    assert [m.failed for m in reached] == [False, True]
    assert next(events) == ("ModelVersion", MODEL_READY)


def test_report_prints_one_line_per_milestone_with_elapsed_seconds() -> None:
    output = io.StringIO()
    console = Console(file=output, soft_wrap=True)
    events = iter(
        [("Dataset", DATASET_READY), ("TrainingRun", RUN_SUCCEEDED), ("ModelVersion", MODEL_READY)]
    )
    assert report_milestones(events, time.monotonic(), console) is True
    lines = output.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("✓") and "s  Dataset wine Ready (version 9f2c1d7c4b0d" in lines[0]
    assert lines[2].endswith("ModelVersion wine-v1 Ready")


def test_report_returns_false_on_a_failure() -> None:
    output = io.StringIO()
    failed = obj("wine-v1", phase="Failed", conditions=ready("False", "DigestMismatch", "[sha]"))
    assert (
        report_milestones(iter([("ModelVersion", failed)]), time.monotonic(), Console(file=output))
        is False
    )
    assert "ModelVersion wine-v1 Failed: DigestMismatch: [sha]" in output.getvalue()
