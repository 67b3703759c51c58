"""Runtime Jobs: their state, what their pods reported, and the manifests Gyre creates."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from builders_fixtures import dataset_obj

from gyre_operator.builders.jobs import (
    MAX_MESSAGE,
    Container,
    ContainerTermination,
    JobRequest,
    JobState,
    ObservedJob,
    RuntimeResult,
    build_job,
    concerns_owner,
    env_name,
    failure_text,
    job_state,
    observe_job,
    parse_termination,
    pvc_claims,
)


def _job(*conditions: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris-profile-1", "annotations": {"gyre.dev/generation": "2"}},
        "status": {"conditions": list(conditions), **status},
    }


COMPLETE = {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "ok"}
FAILED = {
    "type": "Failed",
    "status": "True",
    "reason": "BackoffLimitExceeded",
    "message": "Job has reached the specified backoff limit",
}


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ({}, (JobState.ACTIVE, "", "")),
        ({"status": None}, (JobState.ACTIVE, "", "")),
        (_job(), (JobState.ACTIVE, "", "")),
        (_job(COMPLETE), (JobState.SUCCEEDED, "CompletionsReached", "ok")),
        (
            _job(FAILED),
            (
                JobState.FAILED,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ),
        ),
        (
            _job({"type": "Failed", "status": "True"}),
            (JobState.FAILED, "", ""),
        ),
        # A condition that is not True says nothing.
        (_job({**COMPLETE, "status": "False"}), (JobState.ACTIVE, "", "")),
        (_job({**FAILED, "status": "Unknown"}), (JobState.ACTIVE, "", "")),
        # Interim conditions of Kubernetes >= 1.31 and suspension: still active.
        (
            _job({"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"}),
            (JobState.ACTIVE, "", ""),
        ),
        (
            _job({"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}),
            (JobState.ACTIVE, "", ""),
        ),
        (_job({"type": "Suspended", "status": "True"}), (JobState.ACTIVE, "", "")),
        # The interim condition comes first, the terminal one decides.
        (
            _job(
                {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"},
                {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "m"},
            ),
            (JobState.FAILED, "DeadlineExceeded", "m"),
        ),
    ],
)
def test_job_state(job: dict[str, Any], expected: tuple[JobState, str, str]) -> None:
    assert job_state(job) == expected


@pytest.mark.parametrize(
    ("exit_code", "message", "expected"),
    [
        # Success: the JSON result.
        (0, '{"digest": "abc", "rows": 3}\n', RuntimeResult(data={"digest": "abc", "rows": 3})),
        (0, "", RuntimeResult(data={})),
        # Success with free text (a user's trainer): no data.
        (0, "all done\n", RuntimeResult(data={})),
        # JSON that is not an object is free text.
        (0, "[1, 2]", RuntimeResult(data={})),
        # Failure: reason and message from the JSON line.
        (
            1,
            '{"reason": "DigestMismatch", "message": "sha256 differs", "sha256": "ff"}',
            RuntimeResult(
                data={"reason": "DigestMismatch", "message": "sha256 differs", "sha256": "ff"},
                reason="DigestMismatch",
                message="sha256 differs",
            ),
        ),
        # A multi-line message becomes one line.
        (
            1,
            '{"reason": "InvalidData", "message": "line one\\n  line two"}',
            RuntimeResult(
                data={"reason": "InvalidData", "message": "line one\n  line two"},
                reason="InvalidData",
                message="line one line two",
            ),
        ),
        # JSON without a message: the exit code.
        (
            2,
            '{"reason": "InvalidArguments"}',
            RuntimeResult(
                data={"reason": "InvalidArguments"},
                reason="InvalidArguments",
                message="exit code 2",
            ),
        ),
        # Nothing at all: the exit code.
        (137, "", RuntimeResult(data={}, reason="", message="exit code 137")),
        (1, "  \n\n ", RuntimeResult(data={}, reason="", message="exit code 1")),
        # Free text (logs with FallbackToLogsOnError): its last non-empty line.
        (
            1,
            "Traceback (most recent call last):\n  File x\nValueError:   bad   input\n\n  \n",
            RuntimeResult(data={}, reason="", message="ValueError: bad input"),
        ),
        (1, "[1, 2]", RuntimeResult(data={}, reason="", message="[1, 2]")),
        (1, "null", RuntimeResult(data={}, reason="", message="null")),
        # A reason that cannot be a condition reason is dropped: the caller's default applies.
        (
            1,
            '{"reason": "not a reason!", "message": "bad"}',
            RuntimeResult(data={"reason": "not a reason!", "message": "bad"}, message="bad"),
        ),
    ],
)
def test_parse_termination(exit_code: int, message: str, expected: RuntimeResult) -> None:
    assert parse_termination(ContainerTermination(exit_code, message)) == expected


def test_parse_termination_cuts_long_text() -> None:
    long_line = "x" * (MAX_MESSAGE * 3)
    from_text = parse_termination(ContainerTermination(1, f"first\n{long_line}\n"))
    from_json = parse_termination(
        ContainerTermination(1, json.dumps({"reason": "InvalidData", "message": long_line}))
    )
    for result in (from_text, from_json):
        assert len(result.message) == MAX_MESSAGE
        assert result.message == "x" * (MAX_MESSAGE - 3) + "..."
    exact = "y" * MAX_MESSAGE
    assert parse_termination(ContainerTermination(1, exact)).message == exact


def test_observe_job_reads_the_job_and_its_termination() -> None:
    job = _job(
        FAILED,
        startTime="2026-01-02T03:00:10Z",
        completionTime="2026-01-02T03:01:00Z",
    )
    observed = observe_job(
        job, ContainerTermination(1, '{"reason": "SourceUnreadable", "message": "no such key"}')
    )
    assert observed == ObservedJob(
        name="iris-profile-1",
        state=JobState.FAILED,
        annotations={"gyre.dev/generation": "2"},
        condition_reason="BackoffLimitExceeded",
        condition_message="Job has reached the specified backoff limit",
        start_time="2026-01-02T03:00:10Z",
        completion_time="2026-01-02T03:01:00Z",
        result=RuntimeResult(
            data={"reason": "SourceUnreadable", "message": "no such key"},
            reason="SourceUnreadable",
            message="no such key",
        ),
    )
    # The annotations are a copy: the builders' view never aliases the Job dict.
    observed.annotations["x"] = "y"
    assert job["metadata"]["annotations"] == {"gyre.dev/generation": "2"}


def test_observe_job_without_termination_or_status() -> None:
    observed = observe_job({"metadata": {"name": "j"}}, None)
    assert observed == ObservedJob(name="j", state=JobState.ACTIVE)


def _finished(result: RuntimeResult | None, reason: str = "", message: str = "") -> ObservedJob:
    return ObservedJob(
        name="j",
        state=JobState.FAILED,
        condition_reason=reason,
        condition_message=message,
        result=result,
    )


@pytest.mark.parametrize(
    ("job", "with_reason", "expected"),
    [
        (_finished(RuntimeResult({}, "InvalidData", "bad column")), False, "bad column"),
        (
            _finished(RuntimeResult({}, "InvalidData", "bad column")),
            True,
            "InvalidData: bad column",
        ),
        (_finished(RuntimeResult({}, "", "Traceback last line")), True, "Traceback last line"),
        # No runtime message: the Job's condition message, then its reason, then a default.
        (
            _finished(RuntimeResult({}, "", ""), "BackoffLimitExceeded", "limit\n reached"),
            True,
            "limit reached",
        ),
        (_finished(None, "DeadlineExceeded", ""), False, "DeadlineExceeded"),
        (_finished(None), True, "the Job failed"),
    ],
)
def test_failure_text(job: ObservedJob, with_reason: bool, expected: str) -> None:
    assert failure_text(job, with_reason=with_reason) == expected


@pytest.mark.parametrize(
    ("uris", "claims"),
    [
        ((), []),
        (("s3://bucket/key", "file:///data"), []),
        (("pvc://data/iris.csv",), ["data"]),
        (("pvc://data/a.csv", "pvc://models/out/", "pvc://data/b.csv"), ["data", "models"]),
        (("pvc://claim",), ["claim"]),
        (("pvc:///no-claim",), []),
    ],
)
def test_pvc_claims(uris: tuple[str, ...], claims: list[str]) -> None:
    assert pvc_claims(uris) == claims


@pytest.mark.parametrize(
    ("text", "name"),
    [("data", "DATA"), ("my-claim.v2", "MY_CLAIM_V2"), ("A1_b", "A1_B")],
)
def test_env_name(text: str, name: str) -> None:
    assert env_name(text) == name


OWNER = dataset_obj("iris")


def _request(**fields: Any) -> JobRequest:
    base: dict[str, Any] = {
        "owner": OWNER,
        "name": "iris-profile-abc",
        "component": "profile",
        "containers": (Container(name="main", image="img:1", args=("profile", "--x")),),
    }
    return JobRequest(**{**base, **fields})


def test_build_job_minimal() -> None:
    owner_before = copy.deepcopy(OWNER)
    job = build_job(_request())
    labels = {
        "app.kubernetes.io/managed-by": "gyre",
        "app.kubernetes.io/component": "profile",
        "gyre.dev/owner-kind": "Dataset",
    }
    assert job == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "iris-profile-abc",
            "namespace": "ml",
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "gyre.dev/v1alpha1",
                    "kind": "Dataset",
                    "name": "iris",
                    "uid": "uid-iris",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "img:1",
                            "args": ["profile", "--x"],
                            "env": [],
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                        }
                    ],
                },
            },
        },
    }
    assert owner_before == OWNER


def test_build_job_full() -> None:
    init = Container(
        name="trainer",
        image="me/trainer:2",
        args=("--epochs", "3"),
        command=("python", "train.py"),
        env=({"name": "GYRE_MODEL", "value": "iris"},),
        secrets=("artifacts", "s3-creds"),
        resources={"limits": {"cpu": "2"}},
        uris=("pvc://data/iris.csv",),
    )
    main = Container(
        name="publish",
        image="gyre-runtime:test",
        args=("publish",),
        uris=("pvc://models/root", "s3://other", "pvc://data/again"),
    )
    job = build_job(
        _request(
            containers=(main,),
            init_containers=(init,),
            backoff_limit=3,
            active_deadline_seconds=600,
            ttl_seconds_after_finished=86400,
            labels={"gyre.dev/model": "iris"},
            annotations={"gyre.dev/dataset-digest": "abc"},
            shared_dirs=("/gyre/input", "/gyre/output"),
        )
    )
    spec = job["spec"]
    assert spec["backoffLimit"] == 3
    assert spec["activeDeadlineSeconds"] == 600
    assert spec["ttlSecondsAfterFinished"] == 86400
    assert job["metadata"]["annotations"] == {"gyre.dev/dataset-digest": "abc"}
    expected_labels = {
        "app.kubernetes.io/managed-by": "gyre",
        "app.kubernetes.io/component": "profile",
        "gyre.dev/owner-kind": "Dataset",
        "gyre.dev/model": "iris",
    }
    assert job["metadata"]["labels"] == expected_labels
    assert spec["template"]["metadata"]["labels"] == expected_labels
    pod = spec["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "pvc-0", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "pvc-1", "persistentVolumeClaim": {"claimName": "models"}},
        {"name": "shared-0", "emptyDir": {}},
        {"name": "shared-1", "emptyDir": {}},
    ]
    mounts = [
        {"name": "pvc-0", "mountPath": "/mnt/gyre/pvc/data"},
        {"name": "pvc-1", "mountPath": "/mnt/gyre/pvc/models"},
        {"name": "shared-0", "mountPath": "/gyre/input"},
        {"name": "shared-1", "mountPath": "/gyre/output"},
    ]
    claim_env = [
        {"name": "GYRE_PVC_DATA", "value": "/mnt/gyre/pvc/data"},
        {"name": "GYRE_PVC_MODELS", "value": "/mnt/gyre/pvc/models"},
    ]
    assert pod["initContainers"] == [
        {
            "name": "trainer",
            "image": "me/trainer:2",
            "command": ["python", "train.py"],
            "args": ["--epochs", "3"],
            "env": [*claim_env, {"name": "GYRE_MODEL", "value": "iris"}],
            "envFrom": [{"secretRef": {"name": "artifacts"}}, {"secretRef": {"name": "s3-creds"}}],
            "resources": {"limits": {"cpu": "2"}},
            "volumeMounts": mounts,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    ]
    assert pod["containers"] == [
        {
            "name": "publish",
            "image": "gyre-runtime:test",
            "args": ["publish"],
            "env": claim_env,
            "volumeMounts": mounts,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    ]


def test_build_job_shared_dir_alone_and_no_volumes_without_claims() -> None:
    shared = build_job(_request(shared_dirs=("/out",)))["spec"]["template"]["spec"]
    assert shared["volumes"] == [{"name": "shared-0", "emptyDir": {}}]
    assert shared["containers"][0]["volumeMounts"] == [{"name": "shared-0", "mountPath": "/out"}]
    assert shared["containers"][0]["env"] == []
    plain = build_job(_request())["spec"]["template"]["spec"]
    assert "volumes" not in plain
    assert "initContainers" not in plain
    assert "volumeMounts" not in plain["containers"][0]


@pytest.mark.parametrize(
    ("previous", "current", "concerns"),
    [
        (None, _job(), True),  # appeared
        (_job(), None, True),  # went
        (_job(), _job(active=1), False),  # a pod became active
        (_job(active=1), _job(active=1, ready=1), False),
        (_job(active=1), _job(COMPLETE, succeeded=1), True),  # finished
        (_job(active=1), _job(FAILED, failed=1), True),
        (_job(COMPLETE), _job(COMPLETE, completionTime="x"), False),
    ],
)
def test_concerns_owner(
    previous: dict[str, Any] | None, current: dict[str, Any] | None, concerns: bool
) -> None:
    assert concerns_owner(previous, current) is concerns
