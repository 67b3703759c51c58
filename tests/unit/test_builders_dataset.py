"""Dataset builder: one profile Job per (spec, refresh slot); versions from its result."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest
from builders_fixtures import (
    CONFIG,
    CREATED,
    DIGEST_A,
    DIGEST_B,
    EARLIER,
    IRIS_SCHEMA,
    NOW,
    NOW_TEXT,
    condition,
    dataset_obj,
    failed,
    observed_job,
    ready_condition,
    ready_dataset_status,
    succeeded,
    version,
)
from pydantic import ValidationError

from gyre_operator.api import Dataset
from gyre_operator.builders.dataset import (
    DatasetObserved,
    build_dataset,
    profile_job_name,
    refresh_slot,
)
from gyre_operator.builders.jobs import JobState, ObservedJob
from gyre_operator.builders.plan import NORMAL, WARNING, EventRecord, Plan

PROFILE_RESULT: dict[str, Any] = {
    "digest": DIGEST_B,
    "rows": 151,
    "profileUri": f"s3://gyre/artifacts/datasets/iris/{DIGEST_B}/profile.json",
    "sampleUri": f"s3://gyre/artifacts/datasets/iris/{DIGEST_B}/sample.parquet",
    "features": 4,
    "violations": [],
}
COMPLETED = "2026-01-02T03:02:00Z"


def job_name(obj: dict[str, Any], slot: int = 0) -> str:
    return profile_job_name(Dataset.model_validate(obj), slot)


def build(obj: dict[str, Any], *jobs: ObservedJob) -> Plan:
    before = copy.deepcopy(obj)
    plan = build_dataset(obj, DatasetObserved(jobs=jobs), CONFIG, NOW)
    assert obj == before, "the builder changed its input"
    return plan


def finished(
    name: str,
    data: dict[str, Any] | None = PROFILE_RESULT,
    *,
    generation: str = "1",
    completion_time: str | None = COMPLETED,
) -> ObservedJob:
    return observed_job(
        name,
        JobState.SUCCEEDED,
        result=succeeded(data) if data is not None else None,
        annotations={"gyre.dev/generation": generation},
        completion_time=completion_time,
    )


# ---- a new Dataset ----


def test_new_dataset_creates_its_profile_job() -> None:
    obj = dataset_obj("iris")
    name = job_name(obj)
    plan = build(obj)
    assert name.startswith("iris-profile-")
    assert [c["metadata"]["name"] for c in plan.children] == [name]
    assert plan.status["phase"] == "Profiling"
    assert plan.status["profileJob"] == name
    assert condition(plan.status) == {
        "type": "Ready",
        "status": "False",
        "reason": "Profiling",
        "message": f"profile Job {name} is running",
        "lastTransitionTime": NOW_TEXT,
    }
    assert "observedGeneration" not in plan.status
    assert plan.events == (EventRecord(NORMAL, "ProfileStarted", f"created profile Job {name}"),)
    assert plan.requeue_after is None
    assert plan.finalizers is None


def test_same_inputs_with_the_job_active_change_nothing() -> None:
    obj = dataset_obj("iris")
    first = build(obj)
    again_obj = dataset_obj("iris", status=first.status)
    again = build(again_obj, observed_job(job_name(obj), JobState.ACTIVE))
    assert again.children == ()
    assert again.events == ()
    assert again.status == first.status


def test_profiling_job_gone_is_created_again_without_a_second_event() -> None:
    obj = dataset_obj("iris")
    first = build(obj)
    again = build(dataset_obj("iris", status=first.status))
    assert [c["metadata"]["name"] for c in again.children] == [job_name(obj)]
    assert again.events == ()
    assert again.status == first.status


# ---- the profile Job finished ----


def _profiling_status(obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**build(obj).status, **extra}


def test_job_succeeded_records_a_new_version() -> None:
    obj = dataset_obj("iris", generation=3)
    name = job_name(obj)
    status = _profiling_status(obj)
    plan = build(dataset_obj("iris", generation=3, status=status), finished(name, generation="2"))
    expected = {
        "digest": DIGEST_B,
        "rows": 151,
        "profileUri": PROFILE_RESULT["profileUri"],
        "profiledAt": COMPLETED,
    }
    assert plan.children == ()
    assert plan.status["phase"] == "Ready"
    assert plan.status["currentVersion"] == expected
    assert plan.status["versions"] == [expected]
    assert plan.status["profileJob"] == name
    # The generation the profiled spec had, from the Job's annotation.
    assert plan.status["observedGeneration"] == 2
    message = f"version {DIGEST_B[:12]}: 151 rows"
    assert condition(plan.status) == {
        "type": "Ready",
        "status": "True",
        "reason": "Profiled",
        "message": message,
        "observedGeneration": 2,
        "lastTransitionTime": NOW_TEXT,
    }
    assert plan.events == (EventRecord(NORMAL, "NewVersion", f"profiled {message}"),)


def test_profiled_at_falls_back_to_now_and_generation_zero_is_none() -> None:
    obj = dataset_obj("iris")
    job = finished(job_name(obj), generation="0", completion_time=None)
    plan = build(dataset_obj("iris", status=_profiling_status(obj)), job)
    assert plan.status["currentVersion"]["profiledAt"] == NOW_TEXT
    assert "observedGeneration" not in plan.status


def test_same_digest_again_keeps_the_version_and_says_unchanged() -> None:
    obj = dataset_obj("iris", refreshInterval="1m")
    name = job_name(obj, 4)
    old = ready_dataset_status(DIGEST_B, profile_job=job_name(obj, 3))
    old["versions"] = [version(DIGEST_B), version(DIGEST_A)]
    plan = build(dataset_obj("iris", refreshInterval="1m", status=old), finished(name))
    assert plan.status["currentVersion"] == version(DIGEST_B)  # profiledAt not moved
    assert plan.status["versions"] == [version(DIGEST_B), version(DIGEST_A)]
    assert plan.status["profileJob"] == name
    assert plan.status["phase"] == "Ready"
    assert condition(plan.status)["lastTransitionTime"] == EARLIER
    message = f"version {DIGEST_B[:12]}: 150 rows"
    assert plan.events == (
        EventRecord(NORMAL, "Unchanged", f"profiled again, same digest: {message}"),
    )


def _digest(i: int) -> str:
    return f"{i:064x}"


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        # A digest never seen: newest first, the oldest falls off.
        (_digest(99), [_digest(99), *(_digest(i) for i in range(19))]),
        # A digest seen before (content went back): moved to the front, not repeated.
        (_digest(5), [_digest(5), *(_digest(i) for i in range(20) if i != 5)]),
    ],
)
def test_versions_are_bounded_newest_first_without_repeats(new: str, expected: list[str]) -> None:
    obj = dataset_obj("iris")
    old = ready_dataset_status(_digest(0), profile_job="iris-profile-old")
    old["versions"] = [version(_digest(i)) for i in range(20)]
    result = {**PROFILE_RESULT, "digest": new}
    plan = build(dataset_obj("iris", status=old), finished(job_name(obj), result))
    assert [v["digest"] for v in plan.status["versions"]] == expected
    assert plan.status["currentVersion"]["digest"] == new
    assert plan.status["versions"][0]["profiledAt"] == COMPLETED
    assert [e.reason for e in plan.events] == ["NewVersion"]


@pytest.mark.parametrize(
    ("job", "reason", "message"),
    [
        (
            observed_job(
                "JOB",
                JobState.FAILED,
                result=failed("ValidationFailed", "column 'x': 30% missing > 10%"),
                condition_reason="BackoffLimitExceeded",
                condition_message="Job has reached the specified backoff limit",
            ),
            "ValidationFailed",
            "column 'x': 30% missing > 10%",
        ),
        (
            observed_job(
                "JOB",
                JobState.FAILED,
                condition_reason="BackoffLimitExceeded",
                condition_message="Job has reached the specified backoff limit",
            ),
            "ProfileFailed",
            "Job has reached the specified backoff limit",
        ),
        (
            observed_job("JOB", JobState.FAILED, condition_reason="DeadlineExceeded"),
            "ProfileFailed",
            "DeadlineExceeded",
        ),
    ],
)
def test_failed_job_fails_the_dataset(job: ObservedJob, reason: str, message: str) -> None:
    obj = dataset_obj("iris")
    name = job_name(obj)
    job = observed_job(
        name,
        job.state,
        result=job.result,
        annotations={"gyre.dev/generation": "1"},
        condition_reason=job.condition_reason,
        condition_message=job.condition_message,
    )
    plan = build(dataset_obj("iris", status=_profiling_status(obj)), job)
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    assert plan.status["profileJob"] == name
    assert plan.status["observedGeneration"] == 1
    assert condition(plan.status) == {
        "type": "Ready",
        "status": "False",
        "reason": reason,
        "message": message,
        "observedGeneration": 1,
        "lastTransitionTime": NOW_TEXT,  # first Ready condition was set at NOW as well
    }
    assert "currentVersion" not in plan.status
    assert plan.events == (EventRecord(WARNING, reason, message),)


def test_failed_refresh_keeps_the_current_version_and_moves_ready_to_false() -> None:
    obj = dataset_obj("iris", refreshInterval="1m")
    old = ready_dataset_status(DIGEST_A, profile_job=job_name(obj, 3))
    job = observed_job(
        job_name(obj, 4),
        JobState.FAILED,
        result=failed("SourceUnreadable", "s3://data/iris.csv: access denied"),
        annotations={"gyre.dev/generation": "1"},
    )
    plan = build(dataset_obj("iris", refreshInterval="1m", status=old), job)
    assert plan.status["phase"] == "Failed"
    assert plan.status["currentVersion"] == version(DIGEST_A)
    assert condition(plan.status)["reason"] == "SourceUnreadable"
    assert condition(plan.status)["lastTransitionTime"] == NOW_TEXT


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"digest": DIGEST_B, "rows": 3},  # no profileUri
        {**PROFILE_RESULT, "digest": "not-a-digest"},
        {**PROFILE_RESULT, "rows": -1},
        {**PROFILE_RESULT, "rows": "many"},
    ],
)
def test_succeeded_job_without_a_valid_result_fails(data: dict[str, Any] | None) -> None:
    obj = dataset_obj("iris")
    name = job_name(obj)
    plan = build(dataset_obj("iris", status=_profiling_status(obj)), finished(name, data))
    message = f"profile Job {name} succeeded but reported no valid result"
    assert plan.status["phase"] == "Failed"
    assert condition(plan.status)["reason"] == "ProfileFailed"
    assert condition(plan.status)["message"] == message
    assert plan.events == (EventRecord(WARNING, "ProfileFailed", message),)
    assert "currentVersion" not in plan.status


@pytest.mark.parametrize("phase", ["Ready", "Failed"])
def test_recorded_result_with_the_job_gone_is_not_profiled_again(phase: str) -> None:
    obj = dataset_obj("iris")
    old = ready_dataset_status(DIGEST_A, profile_job=job_name(obj))
    old["phase"] = phase
    plan = build(dataset_obj("iris", status=old))
    assert plan.children == ()
    assert plan.events == ()
    assert plan.status == old
    assert plan.requeue_after is None


@pytest.mark.parametrize(("phase", "ready"), [("Ready", "True"), ("Failed", "False")])
def test_recorded_result_is_observed_at_a_generation_that_changed_refresh_only(
    phase: str, ready: str
) -> None:
    # Adding a refreshInterval in the same slot keeps the profile Job's name: the recorded
    # outcome stands, and the status says it was observed at the new generation.
    old = ready_dataset_status(DIGEST_A, profile_job=job_name(dataset_obj("iris")))
    old["phase"] = phase
    old["conditions"] = [ready_condition(ready, "Profiled", message="m")]
    obj = dataset_obj("iris", generation=2, refreshInterval="24h", status=old)
    assert job_name(obj) == old["profileJob"]
    plan = build(obj)
    assert plan.children == ()
    assert plan.events == ()
    assert plan.status == {
        **old,
        "observedGeneration": 2,
        "conditions": [ready_condition(ready, "Profiled", message="m", generation=2)],
    }
    assert plan.requeue_after == pytest.approx(86400.0 - 245)


def test_recorded_result_with_the_job_still_there_is_not_recorded_again() -> None:
    obj = dataset_obj("iris")
    old = ready_dataset_status(DIGEST_A, profile_job=job_name(obj))
    plan = build(dataset_obj("iris", status=old), finished(job_name(obj)))
    assert plan.status == old
    assert plan.events == ()


# ---- spec changes ----


def test_spec_change_profiles_again_and_is_not_ready_until_profiled() -> None:
    old_obj = dataset_obj("iris")
    old = ready_dataset_status(DIGEST_A, profile_job=job_name(old_obj))
    obj = dataset_obj(
        "iris",
        generation=2,
        status=old,
        source={"uri": "s3://data/iris-v2.csv"},
    )
    name = job_name(obj)
    assert name != job_name(old_obj)
    plan = build(obj)
    assert [c["metadata"]["name"] for c in plan.children] == [name]
    assert plan.status["phase"] == "Profiling"
    assert plan.status["profileJob"] == name
    assert plan.status["currentVersion"] == version(DIGEST_A)  # kept until a new profile
    assert plan.status["observedGeneration"] == 1
    assert condition(plan.status) == {
        "type": "Ready",
        "status": "False",
        "reason": "Profiling",
        "message": f"profile Job {name} is running",
        "observedGeneration": 1,
        "lastTransitionTime": NOW_TEXT,
    }
    assert plan.events == (EventRecord(NORMAL, "ProfileStarted", f"created profile Job {name}"),)


def test_spec_change_after_a_failure_profiles_again() -> None:
    old_obj = dataset_obj("iris")
    old = {**_profiling_status(old_obj), "phase": "Failed"}
    obj = dataset_obj("iris", generation=2, status=old, format="parquet")
    plan = build(obj)
    assert [c["metadata"]["name"] for c in plan.children] == [job_name(obj)]
    assert plan.status["phase"] == "Profiling"


# ---- refresh slots ----


@pytest.mark.parametrize(
    ("interval", "now", "slot", "requeue"),
    [
        (None, NOW, 0, None),
        ("1m", NOW, 4, 55.0),  # created 245 s before NOW: slot 4 ends at 300 s
        ("1h", NOW, 0, 3600.0 - 245),
        ("245s", NOW, 1, 245.0),  # exactly on a boundary: the new slot starts
        ("1m", NOW - timedelta(hours=1), 0, 60.0),  # a clock behind creation: slot 0
        ("500ms", NOW, 490, 0.5),
    ],
)
def test_refresh_slot(interval: str | None, now: Any, slot: int, requeue: float | None) -> None:
    fields = {"refreshInterval": interval} if interval else {}
    dataset = Dataset.model_validate(dataset_obj("iris", **fields))
    found_slot, found_requeue = refresh_slot(dataset, now)
    assert found_slot == slot
    if requeue is None:
        assert found_requeue is None
    else:
        assert found_requeue == pytest.approx(requeue)


def test_profile_job_name_depends_on_uid_spec_and_slot_only() -> None:
    def name(slot: int = 0, uid: str = "uid-iris", **fields: Any) -> str:
        obj = dataset_obj("iris", **fields)
        obj["metadata"]["uid"] = uid
        return job_name(obj, slot)

    assert name() == name()
    assert name(refreshInterval="1h") == name(refreshInterval="5m") == name()
    assert name(1) != name(0)
    assert name(uid="uid-other") != name()
    assert name(format="parquet") != name()
    assert name(validation={"minRows": 10}) != name()


def test_refresh_of_the_same_spec_keeps_ready() -> None:
    obj = dataset_obj("iris", refreshInterval="1m")
    old = ready_dataset_status(DIGEST_A, profile_job=job_name(obj, 3))
    plan = build(dataset_obj("iris", refreshInterval="1m", status=old))
    name = job_name(obj, 4)
    assert [c["metadata"]["name"] for c in plan.children] == [name]
    assert plan.status["phase"] == "Ready"
    assert plan.status == old  # untouched: profileJob names the last recorded Job
    assert plan.events == (EventRecord(NORMAL, "ProfileStarted", f"created profile Job {name}"),)
    assert plan.requeue_after == pytest.approx(55.0)
    running = build(
        dataset_obj("iris", refreshInterval="1m", status=plan.status),
        observed_job(name, JobState.ACTIVE),
    )
    assert (running.children, running.events, running.status) == ((), (), old)


def test_a_refresh_that_finds_new_data_records_a_new_version() -> None:
    obj = dataset_obj("iris", refreshInterval="1m")
    old = ready_dataset_status(DIGEST_A, profile_job=job_name(obj, 3))
    refreshed = build(
        dataset_obj("iris", refreshInterval="1m", status=old), finished(job_name(obj, 4))
    )
    status = refreshed.status
    assert status["currentVersion"]["digest"] == DIGEST_B
    assert [v["digest"] for v in status["versions"]] == [DIGEST_B, DIGEST_A]
    assert status["profileJob"] == job_name(obj, 4)
    assert [e.reason for e in refreshed.events] == ["NewVersion"]
    again = build(
        dataset_obj("iris", refreshInterval="1m", status=status), finished(job_name(obj, 4))
    )
    assert (again.status, again.events, again.children) == (status, (), ())


def test_refresh_of_a_changed_spec_is_not_ready() -> None:
    obj = dataset_obj("iris", generation=2, refreshInterval="1m", format="parquet")
    old = ready_dataset_status(DIGEST_A, profile_job="iris-profile-old", generation=1)
    plan = build(
        dataset_obj("iris", generation=2, refreshInterval="1m", format="parquet", status=old)
    )
    assert [c["metadata"]["name"] for c in plan.children] == [job_name(obj, 4)]
    assert plan.status["phase"] == "Profiling"
    assert condition(plan.status)["status"] == "False"


def test_recorded_slot_waits_for_the_next_one() -> None:
    obj = dataset_obj("iris", refreshInterval="1m")
    old = ready_dataset_status(DIGEST_A, profile_job=job_name(obj, 4))
    plan = build(dataset_obj("iris", refreshInterval="1m", status=old))
    assert plan.children == ()
    assert plan.status == old
    assert plan.requeue_after == pytest.approx(55.0)


# ---- the profile Job manifest ----


def _profile_job(**fields: Any) -> dict[str, Any]:
    plan = build(dataset_obj("iris", generation=5, **fields))
    (job,) = plan.children
    return job


def test_profile_job_args_without_schema_or_validation() -> None:
    job = _profile_job()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "gyre-runtime:test"
    assert container["args"] == [
        "profile",
        "--dataset", "iris",
        "--source", "s3://data/iris.csv",
        "--format", "csv",
        "--artifact-root", "s3://gyre/artifacts",
    ]  # fmt: skip
    assert "envFrom" not in container
    assert job["metadata"]["annotations"] == {"gyre.dev/generation": "5"}
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "profile"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-iris"
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert "activeDeadlineSeconds" not in job["spec"]


def test_profile_job_args_with_schema_validation_and_secret() -> None:
    validation = {"minRows": 100, "maxNullFraction": 0.1}
    job = _profile_job(
        source={"uri": "s3://data/iris.csv", "secretRef": {"name": "s3-creds"}},
        format="parquet",
        schema=IRIS_SCHEMA,
        validation=validation,
    )
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--format") + 1] == "parquet"
    assert json.loads(args[args.index("--schema") + 1]) == IRIS_SCHEMA
    assert args[args.index("--schema") + 1] == json.dumps(IRIS_SCHEMA, sort_keys=True)
    assert json.loads(args[args.index("--validation") + 1]) == validation
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]


def test_profile_job_on_a_pvc_mounts_the_claim() -> None:
    job = _profile_job(source={"uri": "pvc://datasets/iris/"})
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "pvc-0", "persistentVolumeClaim": {"claimName": "datasets"}}]
    assert {"name": "GYRE_PVC_DATASETS", "value": "/mnt/gyre/pvc/datasets"} in pod["containers"][0][
        "env"
    ]


def test_creation_time_is_the_slot_origin() -> None:
    # Two Datasets created at different times are in different slots at the same moment.
    early = Dataset.model_validate(dataset_obj("iris", refreshInterval="1m", created=EARLIER))
    late = Dataset.model_validate(dataset_obj("iris", refreshInterval="1m", created=CREATED))
    assert refresh_slot(early, NOW)[0] == (3 * 3600 + 4 * 60 + 5 + 86400) // 60
    assert refresh_slot(late, NOW)[0] == 4


@pytest.mark.parametrize("interval", ["0s", "0m0s", "00.0h"])
def test_zero_refresh_interval_is_refused(interval: str) -> None:
    with pytest.raises(ValidationError, match="refreshInterval must be longer than zero"):
        Dataset.model_validate(dataset_obj("iris", refreshInterval=interval))
