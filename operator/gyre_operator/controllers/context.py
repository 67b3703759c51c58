"""What every controller shares: the API client, the config, the caches and the queues."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gyre_operator.builders.analysis import PodSample
from gyre_operator.builders.jobs import ContainerTermination, ObservedJob, job_state, observe_job
from gyre_operator.builders.jobs import JobState as JobState
from gyre_operator.config import OperatorConfig
from gyre_operator.controllers.cache import Grouping, ObjectCache, key_of
from gyre_operator.controllers.queue import ReconcileQueue
from gyre_operator.kube import Kube


def model_of(version: Mapping[str, Any]) -> tuple[str, str]:
    """The (namespace, model) a ModelVersion belongs to."""
    return key_of(version)[0], str(version["spec"]["model"])


# How each kind's cache is grouped for the reads its reconciles make.
GROUPINGS: dict[str, Grouping] = {"ModelVersion": model_of, "InferenceService": model_of}


@dataclass
class Context:
    """The operator's shared state, created at start-up and handed to handlers via kopf's memo."""

    kube: Kube
    config: OperatorConfig
    caches: dict[str, ObjectCache] = field(default_factory=dict)
    queues: dict[str, ReconcileQueue] = field(default_factory=dict)
    # A finished Job's outcome never changes: its pod is read once.
    terminations: dict[str, ContainerTermination | None] = field(default_factory=dict)
    # (namespace, model) -> {TrainingRun uid: the version number its current plan registers}
    version_holds: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    # (namespace, name) -> why the API server refused to create a child of that name.
    refusals: dict[tuple[str, str], str] = field(default_factory=dict)
    # (namespace, InferenceService) -> {track: {pod: its serving counters at the last reading}}
    pod_samples: dict[tuple[str, str], dict[str, dict[str, PodSample]]] = field(
        default_factory=dict
    )

    def cache(self, kind: str) -> ObjectCache:
        """The cache of one kind, created on first use."""
        if kind not in self.caches:
            self.caches[kind] = ObjectCache(GROUPINGS.get(kind))
        return self.caches[kind]

    async def observed_job(
        self, namespace: str, name: str, *, read_through: bool = False
    ) -> ObservedJob | None:
        """A child Job as the builders see it, with its pod's termination once it finished.

        read_through: a Job the cache does not hold (yet: right after a start) is asked of
        the API server, for owners whose status says the Job exists.
        """
        job = self.cache("Job").get((namespace, name))
        if job is None and read_through:
            job = await self.kube.get("batch/v1", "Job", namespace, name)
        if job is None:
            return None
        state, _, _ = job_state(job)
        if state is JobState.ACTIVE:
            return observe_job(job, None)
        uid = str(job["metadata"].get("uid", name))
        if uid not in self.terminations:
            self.terminations[uid] = await self.kube.job_termination(namespace, name)
        return observe_job(job, self.terminations[uid])
