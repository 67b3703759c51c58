"""The local kubelet: runs every pod, simulated (like kwok) or as local processes.

The mode is chosen per cluster and can be overridden per pod with the annotation
`local.gyre.dev/kubelet: simulated|process`. In process mode, pods whose images are not in the
ImageMap fall back to simulation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from gyre_local.clock import now_micro_time, now_rfc3339
from gyre_local.controllers.events import EventRecorder
from gyre_local.controllers.informer import watch_forever
from gyre_local.kubelet.process import ImageMap, PodFiles, ProcessPod, claim_directory
from gyre_local.kubelet.state import (
    NODE_NAME,
    Backoff,
    ContainerRecord,
    PodRecord,
    pod_status,
    restarts,
)
from gyre_local.kubelet.usage import (
    Usage,
    UsageHistory,
    node_sample,
    sample_sessions,
    session_totals,
)
from gyre_local.store.patching import MERGE_PATCH
from gyre_local.store.store import ApiError, Store

log = logging.getLogger(__name__)

ANNOTATION_PREFIX = "local.gyre.dev/"
MODE_ANNOTATION = ANNOTATION_PREFIX + "kubelet"
PORTS_ANNOTATION = ANNOTATION_PREFIX + "ports"
MODES = ("simulated", "process")
DEFAULT_GRACE = 30.0
NODE_LEASE_NAMESPACE = "kube-node-lease"
# The kubelet's node lease: its duration, and how often it is renewed (a quarter of it).
LEASE_DURATION_SECONDS = 40
# How often container and node usage is sampled (metrics-server's default resolution is 15 s).
METRICS_RESOLUTION = 10.0


@dataclass(frozen=True)
class Heartbeat:
    """How often (seconds) the kubelet renews its node Lease and reports its Node's status, as
    the kubelet's lease renewal interval and nodeStatusReportFrequency say."""

    lease_period: float = LEASE_DURATION_SECONDS / 4
    status_period: float = 300.0


@dataclass(frozen=True)
class Behaviour:
    """How a simulated pod behaves.

    duration: seconds each container runs before exiting (None: until the pod is deleted);
    exit_code / termination_message: what the containers exit with; ready: whether running
    containers report ready; crash_loop: exit with exit_code (1 when 0) after duration (0.1 s
    when unset) on every run, restarting per restartPolicy; pending: seconds spent Pending;
    logs: what `kubectl logs` returns.
    """

    duration: float | None = None
    exit_code: int = 0
    termination_message: str = ""
    ready: bool = True
    crash_loop: bool = False
    pending: float = 0.0
    logs: str = ""

    def effective(self) -> Behaviour:
        """The behaviour with crash-loop defaults applied."""
        if not self.crash_loop:
            return self
        return replace(
            self,
            exit_code=self.exit_code or 1,
            duration=0.1 if self.duration is None else self.duration,
            ready=False,
        )


@dataclass(frozen=True)
class SimulationRule:
    """A behaviour for pods matching a name prefix, labels and namespace (all optional)."""

    behaviour: Behaviour
    name_prefix: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace: str | None = None

    def matches(self, pod: Mapping[str, Any]) -> bool:
        """Whether the rule applies to a pod."""
        metadata = pod.get("metadata") or {}
        pod_labels = metadata.get("labels") or {}
        return (
            metadata.get("name", "").startswith(self.name_prefix)
            and all(pod_labels.get(k) == v for k, v in self.labels.items())
            and self.namespace in (None, metadata.get("namespace"))
        )


class SimulationRules:
    """The behaviours of simulated pods: rules set by tests, then annotations, then defaults.

    Defaults: pods owned by a Job succeed after `job_duration` seconds; other pods run and are
    ready until deleted. The most recently added matching rule wins; the annotations
    local.gyre.dev/simulate-duration, -exit-code, -termination-message and -ready override it.
    """

    def __init__(self, *, job_duration: float = 0.2) -> None:
        self.job_duration = job_duration
        self._rules: list[SimulationRule] = []

    def add(
        self,
        behaviour: Behaviour,
        *,
        name_prefix: str = "",
        labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
    ) -> None:
        """Add a rule; it takes precedence over earlier rules."""
        self._rules.append(SimulationRule(behaviour, name_prefix, dict(labels or {}), namespace))

    def clear(self) -> None:
        """Forget every rule."""
        self._rules.clear()

    def behaviour_for(self, pod: Mapping[str, Any]) -> Behaviour:
        """The behaviour a pod gets."""
        behaviour = next((r.behaviour for r in reversed(self._rules) if r.matches(pod)), None)
        if behaviour is None:
            owners = (pod.get("metadata") or {}).get("ownerReferences") or []
            is_job = any(o.get("kind") == "Job" for o in owners)
            behaviour = Behaviour(duration=self.job_duration if is_job else None)
        return _with_annotations(behaviour, (pod.get("metadata") or {}).get("annotations") or {})


def _with_annotations(behaviour: Behaviour, annotations: Mapping[str, str]) -> Behaviour:
    changes: dict[str, Any] = {}
    if (value := annotations.get(ANNOTATION_PREFIX + "simulate-duration")) is not None:
        changes["duration"] = parse_duration(value)
    if (value := annotations.get(ANNOTATION_PREFIX + "simulate-exit-code")) is not None:
        changes["exit_code"] = int(value)
        if changes.get("duration", behaviour.duration) is None:
            changes["duration"] = 0.0
    if (value := annotations.get(ANNOTATION_PREFIX + "simulate-termination-message")) is not None:
        changes["termination_message"] = value
    if (value := annotations.get(ANNOTATION_PREFIX + "simulate-ready")) is not None:
        changes["ready"] = value.lower() == "true"
    return replace(behaviour, **changes).effective()


def parse_duration(text: str) -> float:
    """Seconds from "1.5", "500ms", "2s", "1m" or "1h"."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if not match:
        raise ValueError(f"invalid duration {text!r}")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2) or "s"]
    return float(match.group(1)) * scale


class PodRunner(Protocol):
    """What the kubelet drives: a pod's lifecycle, its record and its logs."""

    record: PodRecord

    async def run(self) -> None:
        """Run the pod until it is done for good."""

    async def stop(self, grace: float) -> None:
        """Stop every container within the grace period."""

    def logs(self, container: str) -> str:
        """The current log of a container."""


class SimulatedPod:
    """A pod that runs nothing: its containers move through states by a Behaviour."""

    def __init__(
        self,
        pod: dict[str, Any],
        record: PodRecord,
        behaviour: Behaviour,
        *,
        backoff: Backoff,
        publish: Callable[[], None],
    ) -> None:
        self.record = record
        self._behaviour = behaviour
        self._backoff = backoff
        self._publish = publish
        self._policy = (pod.get("spec") or {}).get("restartPolicy", "Always")

    async def run(self) -> None:
        """Move the pod through Pending, Running and (unless it runs forever) its end."""
        behaviour = self._behaviour
        await asyncio.sleep(behaviour.pending)
        for container in self.record.init_containers:
            container.run()
            container.terminate(0)
        self.record.initialized = True
        while True:
            for container in self.record.containers:
                container.run()
                container.ready = behaviour.ready
            self.record.phase = "Running"
            self._publish()
            if behaviour.duration is None:
                await asyncio.Event().wait()
            await asyncio.sleep(behaviour.duration or 0.0)
            for container in self.record.containers:
                container.terminate(behaviour.exit_code, behaviour.termination_message)
            if not restarts(self._policy, behaviour.exit_code):
                self.record.finish()
                self._publish()
                return
            for container in self.record.containers:
                container.restart_pending()
            self._publish()
            await asyncio.sleep(self._backoff.delay(self.record.containers[0].restart_count))

    async def stop(self, grace: float) -> None:
        """Nothing runs, so nothing to stop."""

    def logs(self, container: str) -> str:
        """The behaviour's log text."""
        return self._behaviour.logs


class PodEvents:
    """The kubelet's events about one pod's containers, read from the changes of its record.

    Each publication of the record is compared with the one before, per container: a run not
    seen before (running, or terminated without having been seen running) records Pulled,
    Created and Started (Failed instead of Started when it could not start); a crash-loop wait
    records BackOff; a configuration error records Failed. Messages are the kubelet's.
    """

    def __init__(self, recorder: EventRecorder, pod: Mapping[str, Any]) -> None:
        self._recorder = recorder
        self._pod = pod
        self._seen: dict[str, tuple[int, str, str, str]] = {}
        self._announced: dict[str, int] = {}

    def observe(self, record: PodRecord) -> None:
        """Record the events of every container change since the last observation."""
        for key, containers in (
            ("initContainers", record.init_containers),
            ("containers", record.containers),
        ):
            for container in containers:
                self._observe(f"spec.{key}{{{container.name}}}", container)

    def stopping(self, record: PodRecord) -> None:
        """Record Killing for every container still running, as its pod is stopped."""
        for key, containers in (
            ("initContainers", record.init_containers),
            ("containers", record.containers),
        ):
            for container in containers:
                if container.running:
                    self._recorder.normal(
                        self._pod,
                        "Killing",
                        f"Stopping container {container.name}",
                        f"spec.{key}{{{container.name}}}",
                    )

    def unhealthy(self, container: str, probe: str, output: str) -> None:
        """Record Unhealthy for a failed Readiness, Liveness or Startup probe attempt."""
        self._recorder.warning(
            self._pod, "Unhealthy", f"{probe} probe failed: {output}", _field_path(container)
        )

    def failed_probe(self, container: str, probe: str) -> None:
        """Record Killing for a container stopped for failing its liveness or startup probe
        (restarted unless the pod's restartPolicy is Never)."""
        message = f"Container {container} failed {probe.lower()} probe"
        if (self._pod.get("spec") or {}).get("restartPolicy") != "Never":
            message += ", will be restarted"
        self._recorder.normal(self._pod, "Killing", message, _field_path(container))

    def _observe(self, field_path: str, container: ContainerRecord) -> None:
        kind = next(iter(container.state), "")
        detail: Mapping[str, Any] = container.state.get(kind) or {}
        reason, message = str(detail.get("reason", "")), str(detail.get("message", ""))
        snapshot = (container.restart_count, kind, reason, message)
        if self._seen.get(field_path) == snapshot:
            return
        self._seen[field_path] = snapshot
        name = container.name
        if kind in ("running", "terminated"):
            if self._announced.get(field_path) == container.restart_count:
                return
            self._announced[field_path] = container.restart_count
            self._recorder.normal(
                self._pod,
                "Pulled",
                f'Container image "{container.image}" already present on machine',
                field_path,
            )
            self._recorder.normal(self._pod, "Created", f"Created container: {name}", field_path)
            if reason == "StartError":
                self._recorder.warning(self._pod, "Failed", f"Error: {message}", field_path)
            else:
                self._recorder.normal(self._pod, "Started", f"Started container {name}", field_path)
        elif reason.endswith("CrashLoopBackOff"):
            metadata = self._pod.get("metadata") or {}
            pod = f"{metadata.get('name')}_{metadata.get('namespace')}({metadata.get('uid')})"
            self._recorder.warning(
                self._pod,
                "BackOff",
                f"Back-off restarting failed container {name} in pod {pod}",
                field_path,
            )
        elif reason == "CreateContainerConfigError":
            self._recorder.warning(self._pod, "Failed", f"Error: {message}", field_path)


def _field_path(container: str) -> str:
    """The field path of a (regular) container, as events name it."""
    return f"spec.containers{{{container}}}"


@dataclass
class _PodHandle:
    uid: str
    namespace: str
    name: str
    runner: PodRunner
    files: PodFiles | None
    grace: float
    events: PodEvents
    task: asyncio.Task[None] | None = None
    retiring: bool = False


class Kubelet:
    """Runs the cluster's pods on the single node "local" and reports their status."""

    def __init__(
        self,
        store: Store,
        *,
        mode: str = "simulated",
        rules: SimulationRules | None = None,
        image_map: ImageMap | None = None,
        state_dir: Path,
        backoff: Backoff | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"kubelet mode must be one of {MODES}, not {mode!r}")
        self.store = store
        self.mode = mode
        self.rules = rules or SimulationRules()
        self.image_map = image_map or ImageMap()
        self.state_dir = state_dir
        self._shared_volumes = state_dir / "volumes"
        self.backoff = backoff or Backoff()
        self.heartbeat = heartbeat or Heartbeat()
        self.metrics_resolution = METRICS_RESOLUTION
        self._usage = UsageHistory()
        self._node_usage = UsageHistory()
        self._pods: dict[str, _PodHandle] = {}
        self._retirements: set[asyncio.Task[None]] = set()
        self.events = EventRecorder(store, "kubelet", host=NODE_NAME)
        self.scheduler_events = EventRecorder(store, "default-scheduler")

    async def run(self) -> None:
        """Run pods as they appear and stop them as they are deleted, and keep the node's
        heartbeat, until cancelled."""
        beating = asyncio.create_task(self._beat_forever(), name="node heartbeat")
        sampling = asyncio.create_task(self._sample_forever(), name="usage sampler")
        try:
            await watch_forever(self.store, "", "pods", self._on_event)
        finally:
            beating.cancel()
            sampling.cancel()
            await self.shutdown()

    async def _beat_forever(self) -> None:
        """Renew the node Lease every lease period and report the Node's status every status
        period, as the kubelet's heartbeats do."""
        loop = asyncio.get_running_loop()
        last_report: float | None = None
        while True:
            try:
                renew_node_lease(self.store, now_micro_time())
                if last_report is None or loop.time() - last_report >= self.heartbeat.status_period:
                    report_node_status(self.store, now_rfc3339())
                    last_report = loop.time()
            except ApiError as error:
                log.warning("node heartbeat failed: %s", error)
            await asyncio.sleep(self.heartbeat.lease_period)

    async def _sample_forever(self) -> None:
        """Sample the node's and every process container's usage each metrics resolution."""
        while True:
            self.sample_usage()
            await asyncio.sleep(self.metrics_resolution)

    def sample_usage(self) -> None:
        """Take one sample of the node and of every running process container."""
        leaders: dict[object, int] = {
            (uid, container, pid): pid
            for uid, handle in self._pods.items()
            if isinstance(handle.runner, ProcessPod)
            for container, pid in handle.runner.container_pids().items()
        }
        sample_sessions(self._usage, leaders, session_totals() if leaders else {})
        self._node_usage.record(NODE_NAME, node_sample())

    def pod_usage(self, uid: str) -> dict[str, Usage]:
        """{container: usage over the last window} of a pod's running containers that have
        been sampled twice (none for simulated pods, which use nothing)."""
        handle = self._pods.get(uid)
        if handle is None or not isinstance(handle.runner, ProcessPod):
            return {}
        usages = {
            container: self._usage.usage((uid, container, pid))
            for container, pid in handle.runner.container_pids().items()
        }
        return {container: usage for container, usage in usages.items() if usage is not None}

    def node_usage(self) -> Usage | None:
        """The whole machine's usage over the last window, None before two samples."""
        return self._node_usage.usage(NODE_NAME)

    async def shutdown(self, grace_cap: float = 5.0) -> None:
        """Stop every pod's containers: SIGTERM, then SIGKILL after at most grace_cap seconds."""
        handles = list(self._pods.values())
        self._pods.clear()
        for handle in handles:
            handle.grace = min(handle.grace, grace_cap)
        await asyncio.gather(*(self._retire(h, publish=False) for h in handles))
        await asyncio.gather(*self._retirements, return_exceptions=True)

    def read_log(self, namespace: str, name: str, container: str | None) -> str:
        """The log of a pod's container (the first container when none is named)."""
        for handle in self._pods.values():
            if (handle.namespace, handle.name) == (namespace, name):
                records = handle.runner.record.containers + handle.runner.record.init_containers
                names = [r.name for r in records]
                chosen = container or (names[0] if names else "")
                if chosen not in names:
                    raise ApiError(
                        400, "BadRequest", f"container {chosen} is not valid for pod {name}"
                    )
                return handle.runner.logs(chosen)
        return ""

    def process_pod(self, uid: str) -> ProcessPod | None:
        """The processes of a pod this kubelet runs as a process pod, from its start until the
        pod is removed (None for other pods): the API server's exec, attach, port-forward and
        log reach containers through this, as kube-apiserver reaches them through the kubelet."""
        handle = self._pods.get(uid)
        runner = handle.runner if handle is not None else None
        return runner if isinstance(runner, ProcessPod) else None

    def claim_directory(self, namespace: str, claim: str) -> Path:
        """The local directory process pods mount for a PersistentVolumeClaim of a namespace."""
        return claim_directory(self._shared_volumes, namespace, claim)

    def mode_for(self, pod: Mapping[str, Any]) -> str:
        """simulated or process, for one pod."""
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        mode = annotations.get(MODE_ANNOTATION, self.mode)
        if mode == "process" and self.image_map.covers(pod):
            return "process"
        return "simulated"

    def _on_event(self, event_type: str, pod: dict[str, Any]) -> None:
        metadata = pod.get("metadata") or {}
        handle = self._pods.get(metadata.get("uid", ""))
        if event_type == "DELETED":
            if handle is not None:
                self._pods.pop(handle.uid, None)
                self._spawn_retirement(handle, publish=False)
            return
        if metadata.get("deletionTimestamp"):
            if handle is not None and not handle.retiring:
                self._spawn_retirement(handle, publish=True)
            return
        if handle is None and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            self._start(pod)

    def _start(self, pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        namespace, name, uid = (
            metadata.get("namespace", "default"),
            metadata["name"],
            metadata["uid"],
        )
        record = PodRecord.for_pod(pod)
        mode = self.mode_for(pod)
        files = (
            PodFiles(
                self.state_dir / "pods" / f"{namespace}_{name}_{uid[:8]}",
                self._shared_volumes,
            )
            if mode == "process"
            else None
        )

        def publish() -> None:
            if (handle := self._pods.get(uid)) is not None:
                handle.events.observe(handle.runner.record)
                self._write_status(handle)

        events = PodEvents(self.events, pod)
        runner: PodRunner
        if files is not None:
            runner = ProcessPod(
                pod,
                record,
                store=self.store,
                image_map=self.image_map,
                files=files,
                backoff=self.backoff,
                publish=publish,
                announce_ports=lambda ports: self._annotate_ports(namespace, name, ports),
                probe_events=events,
            )
        else:
            behaviour = self.rules.behaviour_for(pod)
            runner = SimulatedPod(pod, record, behaviour, backoff=self.backoff, publish=publish)
        # The pod's own grace period: the store records deletions with a grace period of 0.
        grace = float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE))
        handle = _PodHandle(uid, namespace, name, runner, files, grace, events)
        self._pods[uid] = handle
        self._bind(handle, pod)
        publish()
        handle.task = asyncio.create_task(handle.runner.run(), name=f"pod {namespace}/{name}")
        handle.task.add_done_callback(lambda task: self._on_runner_done(handle, task))

    def _bind(self, handle: _PodHandle, pod: dict[str, Any]) -> None:
        """Schedule the pod to the node, as the scheduler's binding would, with its event."""
        if (pod.get("spec") or {}).get("nodeName") == NODE_NAME:
            return
        try:
            bound = self.store.patch(
                "",
                "pods",
                handle.namespace,
                handle.name,
                {"spec": {"nodeName": NODE_NAME}},
                MERGE_PATCH,
            )
        except ApiError:
            return
        self.scheduler_events.normal(
            bound,
            "Scheduled",
            f"Successfully assigned {handle.namespace}/{handle.name} to {NODE_NAME}",
        )

    def _on_runner_done(self, handle: _PodHandle, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.error(
            "pod %s/%s failed in the kubelet",
            handle.namespace,
            handle.name,
            exc_info=task.exception(),
        )
        handle.runner.record.reason = "KubeletError"
        handle.runner.record.message = str(task.exception())
        handle.runner.record.kill(1)
        self._write_status(handle)

    def _spawn_retirement(self, handle: _PodHandle, *, publish: bool) -> None:
        handle.retiring = True
        handle.events.stopping(handle.runner.record)
        task = asyncio.create_task(self._retire(handle, publish=publish))
        self._retirements.add(task)
        task.add_done_callback(self._retirements.discard)

    async def _retire(self, handle: _PodHandle, *, publish: bool) -> None:
        """Stop a pod's containers; publish its final status while the pod still exists."""
        handle.retiring = True
        await handle.runner.stop(handle.grace)
        if handle.task is not None:
            handle.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await handle.task
        if publish:
            handle.runner.record.kill()
            self._write_status(handle)
        elif handle.files is not None:
            shutil.rmtree(handle.files.root, ignore_errors=True)

    def _write_status(self, handle: _PodHandle) -> None:
        try:
            pod = self.store.get("", "pods", handle.namespace, handle.name)
        except ApiError:
            return
        if pod["metadata"].get("uid") != handle.uid:
            return
        status = pod_status(pod.get("status"), handle.runner.record)
        if status == pod.get("status"):
            return
        pod["status"] = status
        try:
            self.store.replace("", "pods", handle.namespace, handle.name, pod, subresource="status")
        except ApiError as error:
            log.debug("status of pod %s/%s not written: %s", handle.namespace, handle.name, error)

    def _annotate_ports(self, namespace: str, name: str, ports: Mapping[str, int]) -> None:
        patch = {"metadata": {"annotations": {PORTS_ANNOTATION: json.dumps(dict(ports))}}}
        with contextlib.suppress(ApiError):
            self.store.patch("", "pods", namespace, name, patch, MERGE_PATCH)


def renew_node_lease(store: Store, renew_time: str) -> None:
    """Create or renew the node's Lease in kube-node-lease, owned by the Node when it exists."""
    lease_type = ("coordination.k8s.io", "leases", NODE_LEASE_NAMESPACE, NODE_NAME)
    try:
        lease = store.get(*lease_type)
    except ApiError as error:
        if error.code != 404:
            raise
        lease = {"metadata": {"name": NODE_NAME, "namespace": NODE_LEASE_NAMESPACE}, "spec": {}}
    spec = {
        **(lease.get("spec") or {}),
        "holderIdentity": NODE_NAME,
        "leaseDurationSeconds": LEASE_DURATION_SECONDS,
        "renewTime": renew_time,
    }
    metadata = lease["metadata"]
    owners = metadata.get("ownerReferences") or _node_owner(store)
    owned = {**metadata, "ownerReferences": owners} if owners else metadata
    renewed = {**lease, "metadata": owned, "spec": spec}
    if "uid" in metadata:
        store.replace(*lease_type, renewed)
    else:
        store.create(*lease_type[:3], renewed)


def _node_owner(store: Store) -> list[dict[str, Any]]:
    """The owner reference the kubelet gives its Lease: the Node (none while it is missing)."""
    try:
        node = store.get("", "nodes", None, NODE_NAME)
    except ApiError:
        return []
    return [{"apiVersion": "v1", "kind": "Node", "name": NODE_NAME, "uid": node["metadata"]["uid"]}]


def report_node_status(store: Store, now: str) -> None:
    """Move the Node's conditions' lastHeartbeatTime to now (nothing when there is no Node)."""
    try:
        node = store.get("", "nodes", None, NODE_NAME)
    except ApiError:
        return
    status = node.get("status") or {}
    conditions = [{**c, "lastHeartbeatTime": now} for c in status.get("conditions") or []]
    store.replace(
        "",
        "nodes",
        None,
        NODE_NAME,
        {**node, "status": {**status, "conditions": conditions}},
        subresource="status",
    )
