"""The kubelet's record of a pod's containers and its rendering as a Kubernetes pod status."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from gyre_local.clock import now_rfc3339

NODE_NAME = "local"
POD_IP = "127.0.0.1"
TERMINAL_PHASES = ("Succeeded", "Failed")
MAX_TERMINATION_MESSAGE = 4096


def restarts(restart_policy: str, exit_code: int) -> bool:
    """Whether a container that exited with exit_code is restarted under a pod restartPolicy."""
    if restart_policy == "Always":
        return True
    return restart_policy == "OnFailure" and exit_code != 0


@dataclass
class Backoff:
    """Crash-loop back-off: base * 2**n seconds, capped."""

    base: float = 0.5
    cap: float = 10.0

    def delay(self, restart_count: int) -> float:
        """Seconds to wait before the restart that follows restart_count earlier restarts."""
        return float(min(self.cap, self.base * 2 ** max(0, restart_count - 1)))


@dataclass
class ContainerRecord:
    """What the kubelet knows about one container: the source of a containerStatuses entry."""

    name: str
    image: str
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    restart_count: int = 0

    @property
    def running(self) -> bool:
        """Whether the container is running now."""
        return "running" in self.state

    @property
    def exit_code(self) -> int | None:
        """The exit code of the last run when the container is terminated, else None."""
        terminated = self.state.get("terminated")
        return None if terminated is None else int(terminated["exitCode"])

    def wait(self, reason: str, message: str = "") -> None:
        """Mark the container waiting (ContainerCreating, CrashLoopBackOff, ...)."""
        self.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        self.ready = False
        self.started = False

    def run(self, *, started: bool = True) -> None:
        """Mark the container running from now."""
        self.state = {"running": {"startedAt": now_rfc3339()}}
        self.started = started

    def terminate(self, exit_code: int, message: str = "", *, reason: str | None = None) -> None:
        """Mark the container terminated with an exit code and termination message."""
        started_at = (self.state.get("running") or {}).get("startedAt") or now_rfc3339()
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": started_at,
            "finishedAt": now_rfc3339(),
            "containerID": self.container_id,
        }
        if message:
            terminated["message"] = message[:MAX_TERMINATION_MESSAGE]
        self.state = {"terminated": terminated}
        self.ready = False
        self.started = False

    def restart_pending(self, backoff_reason: str = "CrashLoopBackOff") -> None:
        """Move the terminated state to lastState and wait for the restart."""
        self.last_state = copy.deepcopy(self.state)
        self.restart_count += 1
        self.wait(backoff_reason, f"back-off restarting failed container {self.name}")

    @property
    def container_id(self) -> str:
        """A stable fake container ID (runtime "local")."""
        return f"local://{self.name}-{self.restart_count}"

    def to_status(self) -> dict[str, Any]:
        """The containerStatuses entry."""
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image,
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": copy.deepcopy(self.state),
            "lastState": copy.deepcopy(self.last_state),
        }
        if not self.state.get("waiting"):
            status["containerID"] = self.container_id
        return status


@dataclass
class PodRecord:
    """What the kubelet knows about one pod."""

    init_containers: list[ContainerRecord]
    containers: list[ContainerRecord]
    phase: str = "Pending"
    start_time: str = field(default_factory=now_rfc3339)
    initialized: bool = False
    reason: str = ""
    message: str = ""

    @classmethod
    def for_pod(cls, pod: dict[str, Any]) -> PodRecord:
        """A fresh record for a pod's init containers and containers."""
        spec = pod.get("spec") or {}

        def records(key: str) -> list[ContainerRecord]:
            return [ContainerRecord(c["name"], c.get("image", "")) for c in spec.get(key) or []]

        record = cls(records("initContainers"), records("containers"))
        if record.init_containers:
            for container in record.init_containers:
                container.wait("PodInitializing")
            for container in record.containers:
                container.wait("PodInitializing")
        else:
            record.initialized = True
        return record

    @property
    def terminal(self) -> bool:
        """Whether the pod reached Succeeded or Failed."""
        return self.phase in TERMINAL_PHASES

    def finish(self) -> None:
        """Set the terminal phase from the containers' exit codes."""
        codes = [c.exit_code for c in self.containers]
        self.phase = "Succeeded" if codes and all(code == 0 for code in codes) else "Failed"

    def kill(self, exit_code: int = 137) -> None:
        """Terminate every container still alive and set the terminal phase (pod deletion)."""
        for container in [*self.init_containers, *self.containers]:
            if container.exit_code is None:
                container.terminate(exit_code, reason="Error")
        if not self.terminal:
            self.finish()


def _condition(kind: str, ok: bool, reason: str = "", now: str = "") -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    if reason and not ok:
        condition["reason"] = reason
    return condition


def pod_status(previous: dict[str, Any] | None, record: PodRecord) -> dict[str, Any]:
    """Render a pod status from the record, keeping transition times of unchanged conditions."""
    now = now_rfc3339()
    containers_ready = bool(record.containers) and all(c.ready for c in record.containers)
    not_ready_reason = "PodCompleted" if record.terminal else "ContainersNotReady"
    conditions = [
        _condition("PodReadyToStartContainers", True, now=now),
        _condition("Initialized", record.initialized, "ContainersNotInitialized", now),
        _condition("ContainersReady", containers_ready, not_ready_reason, now),
        _condition("Ready", containers_ready, not_ready_reason, now),
        _condition("PodScheduled", True, now=now),
    ]
    earlier = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    for condition in conditions:
        before = earlier.get(condition["type"])
        if before and before.get("status") == condition["status"]:
            condition["lastTransitionTime"] = before.get("lastTransitionTime") or now
    status: dict[str, Any] = {
        "phase": record.phase,
        "conditions": conditions,
        "hostIP": POD_IP,
        "hostIPs": [{"ip": POD_IP}],
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "startTime": record.start_time,
        "qosClass": "BestEffort",
        "containerStatuses": [c.to_status() for c in record.containers],
    }
    if record.init_containers:
        status["initContainerStatuses"] = [c.to_status() for c in record.init_containers]
    if record.reason:
        status["reason"] = record.reason
    if record.message:
        status["message"] = record.message
    return status
