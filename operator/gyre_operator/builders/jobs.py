"""Runtime Jobs: the manifests Gyre creates, and what their outcome says.

A runtime reports one JSON line in its termination message: on success the result, on failure
`{"reason": ..., "message": ...}`. A user's own trainer may write anything, so text that is
not such JSON is kept as the message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gyre_operator.api.common import CONDITION_REASON_PATTERN
from gyre_operator.builders.naming import child_labels, owner_reference

PVC_SCHEME = "pvc://"
PVC_MOUNT_ROOT = "/mnt/gyre/pvc"
TERMINATION_POLICY = "FallbackToLogsOnError"
MAX_MESSAGE = 1024


class JobState(StrEnum):
    """Where a Job is: still running, or finished one way or the other."""

    ACTIVE = "Active"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class ContainerTermination:
    """How the container that decided a pod's fate ended."""

    exit_code: int
    message: str


@dataclass(frozen=True)
class RuntimeResult:
    """A runtime's report: its result on success, reason and message on failure."""

    data: dict[str, Any]
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class ObservedJob:
    """A child Job as the builders see it."""

    name: str
    state: JobState
    annotations: dict[str, str] = field(default_factory=dict)
    condition_reason: str = ""
    condition_message: str = ""
    start_time: str | None = None
    completion_time: str | None = None
    result: RuntimeResult | None = None


@dataclass(frozen=True)
class Container:
    """One container of a runtime Job."""

    name: str
    image: str
    args: tuple[str, ...]
    command: tuple[str, ...] = ()
    env: tuple[dict[str, Any], ...] = ()
    secrets: tuple[str, ...] = ()  # Secrets whose keys become variables; later ones win
    resources: dict[str, Any] | None = None
    uris: tuple[str, ...] = ()
    ports: tuple[dict[str, Any], ...] = ()
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)  # readinessProbe, ...


@dataclass(frozen=True)
class JobRequest:
    """Everything a runtime Job is made of."""

    owner: dict[str, Any]
    name: str
    component: str
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...] = ()
    backoff_limit: int = 0
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    shared_dirs: tuple[str, ...] = ()


def job_state(job: dict[str, Any]) -> tuple[JobState, str, str]:
    """A Job's state and, once finished, its condition's reason and message."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobState.SUCCEEDED, condition.get("reason", ""), condition.get("message", "")
        if condition.get("type") == "Failed":
            return JobState.FAILED, condition.get("reason", ""), condition.get("message", "")
    return JobState.ACTIVE, "", ""


def concerns_owner(previous: dict[str, Any] | None, current: dict[str, Any] | None) -> bool:
    """Whether a Job change can change its owner's decisions: the Job appeared, went, or
    started or finished (pods becoming active or ready change nothing an owner decides)."""
    if previous is None or current is None:
        return True
    return job_state(previous) != job_state(current)


def parse_termination(termination: ContainerTermination) -> RuntimeResult:
    """What a runtime reported, from its exit code and termination message."""
    text = termination.message.strip()
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = None
    fallback = f"exit code {termination.exit_code}"
    if not isinstance(data, dict):
        data = {}
        # Free text (logs, with FallbackToLogsOnError): its last line is usually the error.
        lines = [line for line in text.splitlines() if line.strip()]
        fallback = _one_line(lines[-1]) if lines else fallback
    if termination.exit_code == 0:
        return RuntimeResult(data=data)
    reason = str(data.get("reason") or "")
    if not re.fullmatch(CONDITION_REASON_PATTERN, reason):
        reason = ""  # not usable as a condition reason: the caller's default applies
    message = _one_line(str(data.get("message") or "")) or fallback
    return RuntimeResult(data=data, reason=reason, message=message)


def observe_job(job: dict[str, Any], termination: ContainerTermination | None) -> ObservedJob:
    """The builders' view of a Job dict and, once it finished, its pod's termination."""
    state, reason, message = job_state(job)
    status = job.get("status") or {}
    metadata = job.get("metadata") or {}
    return ObservedJob(
        name=metadata["name"],
        state=state,
        annotations=dict(metadata.get("annotations") or {}),
        condition_reason=reason,
        condition_message=message,
        start_time=status.get("startTime"),
        completion_time=status.get("completionTime"),
        result=parse_termination(termination) if termination is not None else None,
    )


def failure_text(job: ObservedJob, *, with_reason: bool = False) -> str:
    """The best one-line account of why a finished Job failed (prefixed with the runtime's
    reason when the caller's own condition reason will not carry it)."""
    if job.result is not None and job.result.message:
        prefix = f"{job.result.reason}: " if with_reason and job.result.reason else ""
        return prefix + job.result.message
    return _one_line(job.condition_message) or job.condition_reason or "the Job failed"


def env_name(text: str) -> str:
    """An environment variable name part: upper case, other characters as underscores."""
    return re.sub(r"[^A-Z0-9]", "_", text.upper())


def pvc_claims(uris: tuple[str, ...]) -> list[str]:
    """The claims named by pvc://<claim>/... URIs, in first-seen order."""
    claims: list[str] = []
    for uri in uris:
        if uri.startswith(PVC_SCHEME):
            claim = uri[len(PVC_SCHEME) :].split("/", 1)[0]
            if claim and claim not in claims:
                claims.append(claim)
    return claims


def pod_spec(
    containers: tuple[Container, ...],
    init_containers: tuple[Container, ...] = (),
    shared_dirs: tuple[str, ...] = (),
    restart_policy: str = "Never",
) -> dict[str, Any]:
    """A pod spec of Gyre containers: claims of pvc:// URIs mounted under /mnt/gyre/pvc,
    one emptyDir per shared directory, mounted in every container."""
    claims = pvc_claims(tuple(u for c in (*init_containers, *containers) for u in c.uris))
    volumes: list[dict[str, Any]] = [
        {"name": f"pvc-{i}", "persistentVolumeClaim": {"claimName": claim}}
        for i, claim in enumerate(claims)
    ]
    mounts = [
        {"name": f"pvc-{i}", "mountPath": f"{PVC_MOUNT_ROOT}/{claim}"}
        for i, claim in enumerate(claims)
    ]
    for i, directory in enumerate(shared_dirs):
        volumes.append({"name": f"shared-{i}", "emptyDir": {}})
        mounts.append({"name": f"shared-{i}", "mountPath": directory})
    claim_env = [
        {"name": f"GYRE_PVC_{env_name(claim)}", "value": f"{PVC_MOUNT_ROOT}/{claim}"}
        for claim in claims
    ]
    spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "containers": [_container(c, mounts, claim_env) for c in containers],
    }
    if init_containers:
        spec["initContainers"] = [_container(c, mounts, claim_env) for c in init_containers]
    if volumes:
        spec["volumes"] = volumes
    return spec


def build_job(request: JobRequest) -> dict[str, Any]:
    """The batch/v1 Job manifest of a runtime Job request."""
    labels = {**child_labels(request.owner, request.component), **request.labels}
    template_spec = pod_spec(request.containers, request.init_containers, request.shared_dirs)
    spec: dict[str, Any] = {
        "backoffLimit": request.backoff_limit,
        "template": {"metadata": {"labels": labels}, "spec": template_spec},
    }
    if request.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = request.active_deadline_seconds
    if request.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = request.ttl_seconds_after_finished
    metadata: dict[str, Any] = {
        "name": request.name,
        "namespace": request.owner["metadata"]["namespace"],
        "labels": labels,
        "ownerReferences": [owner_reference(request.owner)],
    }
    if request.annotations:
        metadata["annotations"] = dict(request.annotations)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def _container(
    container: Container, mounts: list[dict[str, Any]], claim_env: list[dict[str, Any]]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": container.name,
        "image": container.image,
        "args": list(container.args),
        "env": [*claim_env, *container.env],
        "terminationMessagePolicy": TERMINATION_POLICY,
    }
    if container.command:
        out["command"] = list(container.command)
    if container.secrets:
        out["envFrom"] = [{"secretRef": {"name": name}} for name in container.secrets]
    if container.resources:
        out["resources"] = container.resources
    if container.ports:
        out["ports"] = [dict(port) for port in container.ports]
    out.update(container.probes)
    if mounts:
        out["volumeMounts"] = mounts
    return out


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."
