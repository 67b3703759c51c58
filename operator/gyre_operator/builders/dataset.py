"""Dataset: one profile Job per (spec, refresh slot); status from the profile's result."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gyre_operator.api import ConditionStatus, Dataset, get_condition, parse_duration, to_wire
from gyre_operator.api.common import format_timestamp
from gyre_operator.api.dataset import (
    MAX_VERSIONS,
    DatasetPhase,
    DatasetStatus,
    DatasetVersion,
)
from gyre_operator.builders.jobs import (
    Container,
    JobRequest,
    JobState,
    ObservedJob,
    build_job,
    failure_text,
)
from gyre_operator.builders.naming import child_name, short_hash
from gyre_operator.builders.plan import NORMAL, WARNING, EventRecord, Plan
from gyre_operator.builders.status import READY, generation_of, with_ready
from gyre_operator.config import OperatorConfig

COMPONENT = "profile"
GENERATION_ANNOTATION = "gyre.dev/generation"
# Finished profile Jobs go after a day; the status has recorded what they found.
PROFILE_JOB_TTL_SECONDS = 86_400
PROFILE_BACKOFF_LIMIT = 1


@dataclass(frozen=True)
class DatasetObserved:
    """The Dataset's profile Jobs as the operator last saw them."""

    jobs: tuple[ObservedJob, ...] = ()


def refresh_slot(dataset: Dataset, now: datetime) -> tuple[int, float | None]:
    """The refresh slot `now` falls in, and the seconds until the next one (None: no refresh).

    Slots count refreshIntervals from the Dataset's creation, so each one is profiled once.
    """
    if dataset.spec.refresh_interval is None:
        return 0, None
    interval = parse_duration(dataset.spec.refresh_interval).total_seconds()
    created = datetime.fromisoformat(str(dataset.metadata["creationTimestamp"]))
    elapsed = max((now - created).total_seconds(), 0.0)
    slot = math.floor(elapsed / interval)
    return slot, (slot + 1) * interval - elapsed


def profile_job_name(dataset: Dataset, slot: int) -> str:
    """The deterministic name of the profile Job for the Dataset's spec and refresh slot."""
    spec = to_wire(dataset.spec)
    spec.pop("refreshInterval", None)
    return child_name(
        dataset.metadata["name"],
        f"profile-{short_hash(dataset.metadata['uid'], spec, slot)}",
    )


def build_profile_job(
    obj: dict[str, Any], dataset: Dataset, name: str, config: OperatorConfig
) -> dict[str, Any]:
    """The profile Job manifest of a Dataset."""
    spec = dataset.spec
    args = [
        "profile",
        "--dataset",
        dataset.metadata["name"],
        "--source",
        spec.source.uri,
        "--format",
        str(spec.format),
        "--artifact-root",
        config.artifact_root,
    ]
    if spec.schema_ is not None:
        args += ["--schema", json.dumps(to_wire(spec.schema_), sort_keys=True)]
    if spec.validation is not None:
        args += ["--validation", json.dumps(to_wire(spec.validation), sort_keys=True)]
    container = Container(
        name="profile",
        image=config.runtime_image,
        args=tuple(args),
        secrets=config.secrets(spec.source.secret_ref.name if spec.source.secret_ref else None),
        uris=(spec.source.uri, config.artifact_root),
    )
    return build_job(
        JobRequest(
            owner=obj,
            name=name,
            component=COMPONENT,
            containers=(container,),
            backoff_limit=PROFILE_BACKOFF_LIMIT,
            ttl_seconds_after_finished=PROFILE_JOB_TTL_SECONDS,
            annotations={GENERATION_ANNOTATION: str(generation_of(obj) or 0)},
        )
    )


def build_dataset(
    obj: dict[str, Any], observed: DatasetObserved, config: OperatorConfig, now: datetime
) -> Plan:
    """The plan for a Dataset: its profile Job, its status and the events of any change."""
    dataset = Dataset.model_validate(obj)
    old = dataset.status or DatasetStatus()
    slot, requeue = refresh_slot(dataset, now)
    name = profile_job_name(dataset, slot)
    job = next((j for j in observed.jobs if j.name == name), None)
    if old.profile_job == name and old.phase in (DatasetPhase.READY, DatasetPhase.FAILED):
        # Recorded; the Job may be gone. The name covers all a profile depends on, so the
        # outcome holds for this generation too (a change of refreshInterval alone).
        status = _observed(old, generation_of(obj), now)
        return Plan(status=to_wire(status), requeue_after=requeue)
    if job is not None and job.state is not JobState.ACTIVE:
        status, events = _record(old, job, now)
        return Plan(status=to_wire(status), events=events, requeue_after=requeue)
    status = _profiling(old, name, generation_of(obj), now)
    if job is not None:
        return Plan(status=to_wire(status), requeue_after=requeue)
    # A Job gone before it finished (deleted by hand) is created again without a second event.
    events = () if old.profile_job == name else (_started(name),)
    return Plan(
        status=to_wire(status),
        children=(build_profile_job(obj, dataset, name, config),),
        events=events,
        requeue_after=requeue,
    )


def _started(name: str) -> EventRecord:
    return EventRecord(NORMAL, "ProfileStarted", f"created profile Job {name}")


def _observed(old: DatasetStatus, generation: int | None, now: datetime) -> DatasetStatus:
    """A recorded outcome, as observed at the object's current generation."""
    if old.observed_generation == generation:
        return old
    status = old.model_copy(update={"observed_generation": generation})
    ready = get_condition(old.conditions, READY)
    if ready is not None:
        status.conditions = with_ready(
            old.conditions,
            ready.status == ConditionStatus.TRUE,
            ready.reason,
            ready.message,
            generation=generation,
            now=now,
        )
    return status


def _profiling(
    old: DatasetStatus, name: str, generation: int | None, now: datetime
) -> DatasetStatus:
    """Status while the profile Job runs. A refresh of the same spec keeps Ready and the
    recorded profileJob: that name is what marks a Job's outcome as recorded, so a refresh
    Job's result must not look recorded before it is."""
    refreshing = (
        old.current_version is not None
        and old.phase == DatasetPhase.READY
        and old.observed_generation == generation
    )
    if refreshing:
        return old
    status = old.model_copy(update={"profile_job": name})
    status.phase = DatasetPhase.PROFILING
    status.conditions = with_ready(
        old.conditions,
        False,
        "Profiling",
        f"profile Job {name} is running",
        generation=old.observed_generation,
        now=now,
    )
    return status


def _record(
    old: DatasetStatus, job: ObservedJob, now: datetime
) -> tuple[DatasetStatus, tuple[EventRecord, ...]]:
    """Status once the profile Job finished: a new version, or why it failed."""
    generation = int(job.annotations.get(GENERATION_ANNOTATION, "0")) or None
    version = _version(job, now)
    status = old.model_copy(update={"profile_job": job.name, "observed_generation": generation})
    if version is None:
        reason = (job.result.reason if job.result else "") or "ProfileFailed"
        message = failure_text(job) if job.state is JobState.FAILED else _no_result(job)
        status.phase = DatasetPhase.FAILED
        status.conditions = with_ready(
            old.conditions, False, reason, message, generation=generation, now=now
        )
        return status, (EventRecord(WARNING, reason, message),)
    new = old.current_version is None or old.current_version.digest != version.digest
    if new:
        others = [v for v in old.versions if v.digest != version.digest]
        status.versions = [version, *others][:MAX_VERSIONS]
        status.current_version = version
    current = status.current_version or version
    message = f"version {current.digest[:12]}: {current.rows} rows"
    status.phase = DatasetPhase.READY
    status.conditions = with_ready(
        old.conditions, True, "Profiled", message, generation=generation, now=now
    )
    if new:
        return status, (EventRecord(NORMAL, "NewVersion", f"profiled {message}"),)
    return status, (EventRecord(NORMAL, "Unchanged", f"profiled again, same digest: {message}"),)


def _version(job: ObservedJob, now: datetime) -> DatasetVersion | None:
    if job.state is not JobState.SUCCEEDED or job.result is None:
        return None
    data = job.result.data
    try:
        return DatasetVersion(
            digest=data["digest"],
            rows=data["rows"],
            profile_uri=data["profileUri"],
            profiled_at=job.completion_time or format_timestamp(now),
        )
    except (KeyError, ValueError):
        return None


def _no_result(job: ObservedJob) -> str:
    return f"profile Job {job.name} succeeded but reported no valid result"
