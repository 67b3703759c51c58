"""ModelVersion builder: verification of user-registered artifacts, and the serving finalizer."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from builders_fixtures import (
    CONFIG,
    CREATED,
    EARLIER,
    NOW,
    NOW_TEXT,
    OTHER_SIGNATURE,
    SHA_MODEL,
    SIGNATURE,
    condition,
    failed,
    modelversion_obj,
    observed_job,
    ready_condition,
    succeeded,
)

from gyre_operator.builders.jobs import JobState, ObservedJob, RuntimeResult
from gyre_operator.builders.modelversion import (
    ModelVersionObserved,
    build_modelversion,
    verify_job_name,
)
from gyre_operator.builders.plan import NORMAL, WARNING, EventRecord, Plan

VERIFY = "iris-v3-verify"
VERIFIED = {"gyre.dev/verified-sha256": SHA_MODEL, "gyre.dev/training-run": "iris-run"}
COMPLETED = "2026-01-02T03:02:00Z"
SERVED = "gyre.dev/served"


def build(obj: dict[str, Any], job: ObservedJob | None = None) -> Plan:
    before = copy.deepcopy(obj)
    plan = build_modelversion(obj, ModelVersionObserved(job=job), CONFIG, NOW)
    assert obj == before, "the builder changed its input"
    return plan


def verify_job(
    state: JobState, result: RuntimeResult | None = None, message: str = ""
) -> ObservedJob:
    return observed_job(
        VERIFY,
        state,
        result=result,
        condition_reason="BackoffLimitExceeded" if state is JobState.FAILED else "",
        condition_message=message,
        completion_time=COMPLETED if state is not JobState.ACTIVE else None,
    )


def decided(phase: str, **extra: Any) -> dict[str, Any]:
    return {
        "phase": phase,
        "observedGeneration": 1,
        "signature": SIGNATURE,
        "verifiedAt": EARLIER,
        "conditions": [ready_condition("True" if phase == "Ready" else "False", "Verified")],
        **extra,
    }


# ---- registered by a TrainingRun ----


def test_registered_by_a_run_is_ready_at_once() -> None:
    obj = modelversion_obj(annotations=VERIFIED, signature=SIGNATURE, generation=2)
    plan = build(obj)
    message = f"registered by TrainingRun with sha256 {SHA_MODEL[:12]}"
    assert plan.children == ()
    assert plan.status == {
        "phase": "Ready",
        "observedGeneration": 2,
        "signature": SIGNATURE,
        "verifiedAt": CREATED,
        "servedBy": [],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Verified",
                "message": message,
                "observedGeneration": 2,
                "lastTransitionTime": NOW_TEXT,
            }
        ],
    }
    assert plan.events == (EventRecord(NORMAL, "Verified", message),)
    assert plan.finalizers is None
    assert plan.requeue_after is None


def test_verified_annotation_for_another_digest_is_verified_by_a_job() -> None:
    obj = modelversion_obj(annotations={"gyre.dev/verified-sha256": "e" * 64})
    plan = build(obj)
    assert [c["metadata"]["name"] for c in plan.children] == [VERIFY]
    assert plan.status["phase"] == "Pending"


def test_registered_without_a_signature_is_verified_by_a_job() -> None:
    plan = build(modelversion_obj(annotations=VERIFIED))
    assert [c["metadata"]["name"] for c in plan.children] == [VERIFY]
    assert plan.status["phase"] == "Pending"


def test_no_serving_finalizer_is_added_to_a_version_being_deleted() -> None:
    status = decided("Ready", servedBy=["iris-svc"])
    plan = build(modelversion_obj(status=status, finalizers=["other/hold"], deleting=True))
    assert plan.finalizers is None


# ---- registered by a user ----


def test_user_registered_gets_a_verify_job() -> None:
    obj = modelversion_obj()
    plan = build(obj)
    message = f"verification Job {VERIFY} is running"
    assert plan.status["phase"] == "Pending"
    assert plan.status["observedGeneration"] == 1
    assert condition(plan.status) == {
        "type": "Ready",
        "status": "False",
        "reason": "Verifying",
        "message": message,
        "observedGeneration": 1,
        "lastTransitionTime": NOW_TEXT,
    }
    assert plan.events == (EventRecord(NORMAL, "Verifying", f"created verification Job {VERIFY}"),)
    (job,) = plan.children
    assert verify_job_name("iris-v3") == VERIFY
    assert job["metadata"]["name"] == VERIFY
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "verify"
    assert job["metadata"]["labels"]["gyre.dev/owner-kind"] == "ModelVersion"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-iris-v3"
    assert job["spec"]["backoffLimit"] == 1
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "gyre-runtime:test"
    assert container["args"] == [
        "verify",
        "--uri", "s3://models/iris/3/model.onnx",
        "--sha256", SHA_MODEL,
    ]  # fmt: skip


def test_verify_job_on_a_pvc_mounts_the_claim() -> None:
    obj = modelversion_obj()
    obj["spec"]["artifact"]["uri"] = "pvc://models/iris/3/model.onnx"
    (job,) = build(obj).children
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "pvc-0", "persistentVolumeClaim": {"claimName": "models"}}]


def test_verify_job_running_changes_nothing() -> None:
    first = build(modelversion_obj())
    plan = build(modelversion_obj(status=first.status), verify_job(JobState.ACTIVE))
    assert plan.children == ()
    assert plan.events == ()
    assert plan.status == first.status


@pytest.mark.parametrize(
    ("result", "message", "reason", "expected"),
    [
        (
            failed("DigestMismatch", "sha256 of s3://models/iris/3/model.onnx is ff.."),
            "Job has reached the specified backoff limit",
            "DigestMismatch",
            "sha256 of s3://models/iris/3/model.onnx is ff..",
        ),
        (
            failed("InvalidModel", "not a servable ONNX model"),
            "",
            "InvalidModel",
            "not a servable ONNX model",
        ),
        (
            None,
            "Job has reached the specified backoff limit",
            "VerificationFailed",
            "Job has reached the specified backoff limit",
        ),
        (
            RuntimeResult(data={}, message="Killed"),
            "",
            "VerificationFailed",
            "Killed",
        ),
    ],
)
def test_verify_job_failed(
    result: RuntimeResult | None, message: str, reason: str, expected: str
) -> None:
    pending = build(modelversion_obj()).status
    plan = build(modelversion_obj(status=pending), verify_job(JobState.FAILED, result, message))
    assert plan.children == ()
    assert plan.status["phase"] == "Failed"
    assert condition(plan.status)["reason"] == reason
    assert condition(plan.status)["message"] == expected
    assert condition(plan.status)["lastTransitionTime"] == NOW_TEXT
    assert "verifiedAt" not in plan.status
    assert plan.events == (EventRecord(WARNING, reason, expected),)


@pytest.mark.parametrize("spec_signature", [None, SIGNATURE])
def test_verify_job_succeeded(spec_signature: dict[str, Any] | None) -> None:
    obj = modelversion_obj(signature=spec_signature, status=build(modelversion_obj()).status)
    result = succeeded({"sha256": SHA_MODEL, "signature": SIGNATURE})
    plan = build(obj, verify_job(JobState.SUCCEEDED, result))
    message = f"sha256 {SHA_MODEL[:12]} verified, signature read from the model"
    assert plan.children == ()
    assert plan.status["phase"] == "Ready"
    assert plan.status["signature"] == SIGNATURE
    assert plan.status["verifiedAt"] == COMPLETED
    assert condition(plan.status)["status"] == "True"
    assert condition(plan.status)["reason"] == "Verified"
    assert condition(plan.status)["message"] == message
    assert plan.events == (EventRecord(NORMAL, "Verified", message),)


def test_verified_at_falls_back_to_now() -> None:
    job = observed_job(
        VERIFY, JobState.SUCCEEDED, result=succeeded({"sha256": SHA_MODEL, "signature": SIGNATURE})
    )
    plan = build(modelversion_obj(), job)
    assert plan.status["verifiedAt"] == NOW_TEXT


def test_signature_in_spec_differing_from_the_model_fails() -> None:
    obj = modelversion_obj(signature=OTHER_SIGNATURE)
    result = succeeded({"sha256": SHA_MODEL, "signature": SIGNATURE})
    plan = build(obj, verify_job(JobState.SUCCEEDED, result))
    message = "spec.signature differs from the signature in the ONNX graph"
    assert plan.status["phase"] == "Failed"
    assert "signature" not in plan.status
    assert condition(plan.status)["reason"] == "SignatureMismatch"
    assert condition(plan.status)["message"] == message
    assert plan.events == (EventRecord(WARNING, "SignatureMismatch", message),)


@pytest.mark.parametrize(
    "result",
    [
        None,
        succeeded({"sha256": SHA_MODEL}),
        succeeded({"sha256": SHA_MODEL, "signature": {"inputs": []}}),
        succeeded({"sha256": SHA_MODEL, "signature": "x"}),
    ],
)
def test_verify_job_without_a_valid_signature_fails(result: RuntimeResult | None) -> None:
    plan = build(modelversion_obj(), verify_job(JobState.SUCCEEDED, result))
    message = f"Job {VERIFY} reported no valid signature"
    assert plan.status["phase"] == "Failed"
    assert condition(plan.status)["reason"] == "VerificationFailed"
    assert condition(plan.status)["message"] == message
    assert plan.events == (EventRecord(WARNING, "VerificationFailed", message),)


@pytest.mark.parametrize("phase", ["Ready", "Failed"])
def test_decided_phases_are_not_revisited(phase: str) -> None:
    status = decided(phase)
    for job in (
        None,
        verify_job(JobState.FAILED, failed("DigestMismatch", "m")),
        verify_job(JobState.SUCCEEDED, succeeded({"signature": OTHER_SIGNATURE})),
    ):
        plan = build(modelversion_obj(signature=OTHER_SIGNATURE, status=status), job)
        assert plan.children == ()
        assert plan.events == ()
        assert plan.status == {**status, "servedBy": []}
        assert plan.finalizers is None


def test_decided_phase_records_a_new_generation() -> None:
    plan = build(modelversion_obj(generation=4, status=decided("Ready")))
    assert plan.status["observedGeneration"] == 4
    assert condition(plan.status) == decided("Ready")["conditions"][0]


# ---- serving and deletion ----


@pytest.mark.parametrize(
    ("served_by", "finalizers", "expected"),
    [
        ([], None, None),
        ([], ["other.io/keep"], None),
        (["iris-svc"], None, (SERVED,)),
        (["iris-svc"], ["other.io/keep"], ("other.io/keep", SERVED)),
        (["iris-svc"], [SERVED], None),
        (["iris-svc"], [SERVED, "other.io/keep"], None),
        ([], [SERVED], ()),
        ([], ["other.io/keep", SERVED], ("other.io/keep",)),
    ],
)
def test_serving_finalizer(
    served_by: list[str], finalizers: list[str] | None, expected: tuple[str, ...] | None
) -> None:
    obj = modelversion_obj(status=decided("Ready", servedBy=served_by), finalizers=finalizers)
    plan = build(obj)
    assert plan.finalizers == expected
    assert plan.status["servedBy"] == served_by


def test_deleting_while_served_is_blocked_with_one_event() -> None:
    status = decided("Ready", servedBy=["iris-svc", "iris-shadow"])
    obj = modelversion_obj(status=status, finalizers=[SERVED], deleting=True)
    plan = build(obj)
    message = "deletion waits until nothing serves it; served by iris-svc, iris-shadow"
    assert condition(plan.status, "DeletionBlocked") == {
        "type": "DeletionBlocked",
        "status": "True",
        "reason": "Served",
        "message": message,
        "observedGeneration": 1,
        "lastTransitionTime": NOW_TEXT,
    }
    assert condition(plan.status) == status["conditions"][0]  # Ready untouched
    assert plan.events == (EventRecord(WARNING, "DeletionBlocked", message),)
    assert plan.finalizers is None
    # The next reconcile, still served: the condition stays, no second event.
    again = build(modelversion_obj(status=plan.status, finalizers=[SERVED], deleting=True))
    assert again.events == ()
    assert again.status == plan.status


def test_deletion_unblocked_once_nothing_serves_it() -> None:
    blocked = build(
        modelversion_obj(
            status=decided("Ready", servedBy=["iris-svc"]), finalizers=[SERVED], deleting=True
        )
    ).status
    released = {**blocked, "servedBy": []}
    plan = build(modelversion_obj(status=released, finalizers=[SERVED], deleting=True))
    assert [c["type"] for c in plan.status["conditions"]] == ["Ready"]
    assert plan.finalizers == ()
    assert plan.events == ()


def test_served_but_not_deleting_is_not_blocked() -> None:
    plan = build(modelversion_obj(status=decided("Ready", servedBy=["s"]), finalizers=[SERVED]))
    assert [c["type"] for c in plan.status["conditions"]] == ["Ready"]
    assert plan.events == ()


def test_deleting_a_pending_version_still_verifies_and_blocks() -> None:
    status = {**build(modelversion_obj()).status, "servedBy": ["s"]}
    obj = modelversion_obj(status=status, finalizers=[SERVED], deleting=True)
    plan = build(obj, verify_job(JobState.ACTIVE))
    assert plan.status["phase"] == "Pending"
    assert condition(plan.status, "DeletionBlocked")["status"] == "True"
    assert [e.reason for e in plan.events] == ["DeletionBlocked"]
