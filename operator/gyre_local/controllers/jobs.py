"""The Job controller (batch/v1) and the TTL-after-finished controller.

Finished pods are counted into .status with the `batch.kubernetes.io/job-tracking` finalizer,
as Kubernetes does, so deleting a finished pod never changes the counts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from gyre_local.clock import now_rfc3339, seconds_since
from gyre_local.controllers.events import EventRecorder, pod_created, pod_deleted
from gyre_local.controllers.objects import (
    is_deleting,
    owned_by,
    owner_reference,
    pod_ready,
    pod_terminal,
)
from gyre_local.controllers.reconciler import Controller, Key, owner_keys
from gyre_local.names import random_suffix
from gyre_local.store.store import ApiError, Store

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
DEFAULT_BACKOFF_LIMIT = 6


def condition(kind: str, reason: str, message: str, now: str) -> dict[str, Any]:
    """A JobCondition with status True."""
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


def finished_condition(job: dict[str, Any]) -> dict[str, Any] | None:
    """The Complete or Failed condition when it is True."""
    for item in (job.get("status") or {}).get("conditions") or []:
        if item.get("type") in ("Complete", "Failed") and item.get("status") == "True":
            return dict(item)
    return None


class JobController(Controller):
    """Creates a Job's pods, counts their outcomes and finishes the Job."""

    resource = ("batch", "jobs")

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.events = EventRecorder(store, "job-controller")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """Pods, mapped to the Job that controls (or controlled) them."""
        return [("", "pods", _job_keys)]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Bring one Job's pods and status in line with its spec."""
        try:
            job = self.store.get("batch", "jobs", namespace, name)
        except ApiError as error:
            if error.code != 404:
                raise
            self._release_orphans(namespace, name, None)
            return None
        pods = self._pods(job)
        self._release_orphans(namespace, name, job)
        status = copy.deepcopy(job.get("status") or {})
        counted = self._count_finished(pods, status)
        if counted:
            # Counted into the Job's status first, released after: a pod is never counted twice.
            self._write(job, status)
            for pod in counted:
                self._release(pod)
        pods = [p for p in pods if not pod_terminal(p) and not is_deleting(p)]
        if finished_condition(job) is not None:
            return self._expire(job)
        if is_deleting(job):
            return None
        spec = job.get("spec") or {}
        now = now_rfc3339()
        if spec.get("suspend"):
            self._delete_pods(job, pods)
            status["active"] = 0
            status["ready"] = 0
            suspending = self._set_condition(
                status, condition("Suspended", "JobSuspended", "Job suspended", now)
            )
            self._write(job, status)
            if suspending:
                self.events.normal(job, "Suspended", "Job suspended")
            return None
        suspended = [c for c in status.get("conditions") or [] if c.get("type") == "Suspended"]
        resuming = bool(suspended) and suspended[0].get("status") == "True"
        if resuming:
            resumed = condition("Suspended", "JobResumed", "Job resumed", now)
            self._set_condition(status, {**resumed, "status": "False"})
        status.setdefault("startTime", now)
        recheck = None
        verdict = self._verdict(spec, status, pods)
        if verdict is not None:
            reason, message = verdict
            self._delete_pods(job, pods)
            pods = []
            if reason == "Complete":
                status["completionTime"] = now
                self._set_condition(
                    status, condition("SuccessCriteriaMet", "CompletionsReached", message, now)
                )
                self._set_condition(
                    status, condition("Complete", "CompletionsReached", message, now)
                )
            else:
                self._set_condition(status, condition("FailureTarget", reason, message, now))
                self._set_condition(status, condition("Failed", reason, message, now))
        else:
            pods = self._scale(job, pods)
            if (deadline := spec.get("activeDeadlineSeconds")) is not None:
                recheck = max(0.05, float(deadline) - seconds_since(status["startTime"]))
        status["active"] = len(pods)
        status["ready"] = sum(1 for p in pods if pod_ready(p))
        self._write(job, status)
        if resuming:
            self.events.normal(job, "Resumed", "Job resumed")
        if verdict is not None:
            self._record_finished(job, *verdict)
            return self._expire(job)
        return recheck

    def _record_finished(self, job: dict[str, Any], reason: str, message: str) -> None:
        """The event of a finished Job: Completed, or a Warning with the failure's reason."""
        if reason == "Complete":
            self.events.normal(job, "Completed", "Job completed")
        else:
            self.events.warning(job, reason, message)

    def _pods(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """The Job's pods: by the `controller-uid` label (an indexed lookup), then ownership."""
        items, _ = self.store.list(
            "",
            "pods",
            job["metadata"]["namespace"],
            label_selector=f"controller-uid={job['metadata']['uid']}",
        )
        return [p for p in items if owned_by(p, job)]

    @staticmethod
    def _count_finished(pods: list[dict[str, Any]], status: dict[str, Any]) -> list[dict[str, Any]]:
        """Count terminal (or deleted unfinished) pods not yet counted; return them."""
        counted = []
        for pod in pods:
            if TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []):
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Succeeded":
                status["succeeded"] = status.get("succeeded", 0) + 1
            elif phase == "Failed" or is_deleting(pod):
                status["failed"] = status.get("failed", 0) + 1
            else:
                continue
            counted.append(pod)
        return counted

    def _release(self, pod: dict[str, Any]) -> None:
        finalizers = [f for f in pod["metadata"].get("finalizers") or [] if f != TRACKING_FINALIZER]
        patch = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": pod["metadata"]["resourceVersion"],
            },
            {"op": "replace", "path": "/metadata/finalizers", "value": finalizers},
        ]
        try:
            self.store.patch(
                "",
                "pods",
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                patch,
                "application/json-patch+json",
            )
        except ApiError as error:
            if error.code != 404:
                raise

    def _release_orphans(self, namespace: str, name: str, job: dict[str, Any] | None) -> None:
        """Release the finalizer of pods whose Job (by uid) is gone; the `job-name` label
        selects them through the store's label index, without reading every pod."""
        items, _ = self.store.list("", "pods", namespace, label_selector=f"job-name={name}")
        for pod in items:
            if TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []):
                continue
            if job is None or not owned_by(pod, job):
                self._release(pod)

    def _verdict(
        self, spec: dict[str, Any], status: dict[str, Any], active: list[dict[str, Any]]
    ) -> tuple[str, str] | None:
        """("Complete", message) or (failure reason, message) once the Job is decided."""
        completions = spec.get("completions")
        succeeded = status.get("succeeded", 0)
        restart_policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        failures = status.get("failed", 0)
        if restart_policy == "OnFailure":
            failures += sum(_restarts(p) for p in active)
        backoff_limit = spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)
        if failures > backoff_limit:
            return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and seconds_since(status["startTime"]) >= float(deadline):
            return "DeadlineExceeded", "Job was active longer than specified deadline"
        if completions is None:
            if succeeded > 0 and not active:
                return "Complete", "Reached expected number of succeeded pods"
        elif succeeded >= completions:
            return "Complete", "Reached expected number of succeeded pods"
        return None

    def _scale(self, job: dict[str, Any], active: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create or delete pods so that the wanted number are active."""
        spec = job.get("spec") or {}
        parallelism = spec.get("parallelism", 1)
        completions = spec.get("completions")
        succeeded = (job.get("status") or {}).get("succeeded", 0)
        if completions is None:
            wanted = parallelism if succeeded == 0 else 0
        else:
            wanted = max(0, min(parallelism, completions - succeeded))
        if len(active) > wanted:
            self._delete_pods(job, active[wanted:])
            return active[:wanted]
        return active + [self._create_pod(job) for _ in range(wanted - len(active))]

    def _create_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        metadata = job["metadata"]
        template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        pod_metadata = template.get("metadata") or {}
        labels = dict(pod_metadata.get("labels") or {})
        labels.update(
            {
                "job-name": metadata["name"],
                "batch.kubernetes.io/job-name": metadata["name"],
                "controller-uid": metadata["uid"],
                "batch.kubernetes.io/controller-uid": metadata["uid"],
            }
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{metadata['name']}-{random_suffix()}",
                "generateName": f"{metadata['name']}-",
                "namespace": metadata["namespace"],
                "labels": labels,
                "annotations": dict(pod_metadata.get("annotations") or {}),
                "ownerReferences": [owner_reference(job)],
                "finalizers": [TRACKING_FINALIZER],
            },
            "spec": template.get("spec") or {},
        }
        created = self.store.create("", "pods", metadata["namespace"], pod)
        pod_created(self.events, job, created)
        return created

    def _delete_pods(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            try:
                self.store.delete("", "pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
            except ApiError as error:
                if error.code != 404:
                    raise
                continue
            pod_deleted(self.events, job, pod)

    def _expire(self, job: dict[str, Any]) -> float | None:
        """Delete a finished Job once ttlSecondsAfterFinished passed; else when to look again."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        finished = finished_condition(job)
        if ttl is None or finished is None or is_deleting(job):
            return None
        since = (job.get("status") or {}).get("completionTime") or finished["lastTransitionTime"]
        remaining = float(ttl) - seconds_since(since)
        if remaining > 0:
            return remaining
        metadata = job["metadata"]
        self.store.delete(
            "batch",
            "jobs",
            metadata["namespace"],
            metadata["name"],
            propagation_policy="Background",
        )
        return None

    @staticmethod
    def _set_condition(status: dict[str, Any], new: dict[str, Any]) -> bool:
        """Add or replace a condition, saying whether it changed; an equal one (status and
        reason) is kept as it is."""
        for existing in status.get("conditions") or []:
            if existing.get("type") == new["type"] and (
                existing.get("status"),
                existing.get("reason"),
            ) == (new["status"], new["reason"]):
                return False
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != new["type"]]
        status["conditions"] = [*conditions, new]
        return True

    def _write(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        """Write the status (zero counters omitted, as Kubernetes does) and refresh job."""
        for counter in ("active", "succeeded", "failed"):
            if status.get(counter) == 0:
                del status[counter]
        if status == (job.get("status") or {}):
            return
        updated = copy.deepcopy(job)
        updated["status"] = copy.deepcopy(status)
        metadata = job["metadata"]
        written = self.store.replace(
            "batch", "jobs", metadata["namespace"], metadata["name"], updated, subresource="status"
        )
        job.clear()
        job.update(written)


def _job_keys(pod: dict[str, Any]) -> list[Key]:
    """The controlling Job of a pod; for orphans still tracked, the Job named in its labels."""
    keys = owner_keys("Job")(pod)
    metadata = pod.get("metadata") or {}
    if keys or TRACKING_FINALIZER not in (metadata.get("finalizers") or []):
        return keys
    name = (metadata.get("labels") or {}).get("job-name")
    return [(metadata.get("namespace", ""), name)] if name else []


def _restarts(pod: dict[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)
