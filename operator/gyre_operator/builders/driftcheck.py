"""Drift checks: when they run (slots), the check Job of a slot, and what its result says."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from croniter import croniter
from pydantic import ValidationError

from gyre_operator.api import DriftMonitor, parse_duration, to_wire
from gyre_operator.api.common import format_timestamp
from gyre_operator.api.drift import MAX_FEATURE_RESULTS, CheckRecord, DriftCheck, Verdict
from gyre_operator.builders.jobs import (
    Container,
    JobRequest,
    JobState,
    ObservedJob,
    build_job,
    failure_text,
)
from gyre_operator.builders.naming import child_name
from gyre_operator.config import OperatorConfig

COMPONENT = "drift"
CHECK_ANNOTATION = "gyre.dev/drift-check"
CHECK_ID_FORMAT = "%Y%m%d-%H%M%S"
# A check that ran this long is stuck: the next slot must not wait for it forever.
CHECK_DEADLINE_SECONDS = 900
CHECK_BACKOFF_LIMIT = 1
# Finished check Jobs go after a day at the latest; the status has recorded what they found.
CHECK_JOB_TTL_SECONDS = 86_400
# A runtime that found no logged request at all exits with this reason: a fact about the
# traffic, recorded as InsufficientData with no samples rather than as a broken check.
EMPTY_WINDOW = "EmptyWindow"


class InvalidSchedule(ValueError):
    """spec.schedule is not a cron expression croniter understands."""


@dataclass(frozen=True)
class Slots:
    """The latest check slot that has begun (None before the first) and the next one."""

    current: datetime | None
    next: datetime


def check_slots(monitor: DriftMonitor, now: datetime) -> Slots:
    """The monitor's check slots around `now`.

    An interval counts from the monitor's creation (the first check one interval after it);
    a cron schedule fires at its times (UTC) after the creation. Only the latest begun slot
    is ever run, so slots missed while the operator was down run once, not once each.
    """
    created = datetime.fromisoformat(str(monitor.metadata["creationTimestamp"]))
    schedule = monitor.spec.schedule
    if schedule is not None:
        if not croniter.is_valid(schedule):
            raise InvalidSchedule(f"schedule: {schedule!r} is not a five-field cron expression")
        previous: datetime = croniter(schedule, now).get_prev(datetime)
        upcoming: datetime = croniter(schedule, now).get_next(datetime)
        return Slots(previous if previous >= created else None, upcoming)
    interval = parse_duration(str(monitor.spec.interval))
    elapsed = max((now - created).total_seconds(), 0.0)
    count = math.floor(elapsed / interval.total_seconds())
    current = created + count * interval if count >= 1 else None
    return Slots(current, created + (count + 1) * interval)


def check_id(slot: datetime) -> str:
    """The identifier of the check of a slot: its UTC time, sortable and usable in names."""
    return slot.strftime(CHECK_ID_FORMAT)


def check_job_name(monitor: str, identifier: str) -> str:
    """The deterministic name of the Job that runs one check."""
    return child_name(monitor, f"check-{identifier}")


def requests_uri(config: OperatorConfig, service: str) -> str:
    """Where the serving pods of an InferenceService log their requests."""
    return f"{config.artifact_root.rstrip('/')}/requests/{service}/"


def report_uri(config: OperatorConfig, monitor: str, identifier: str) -> str:
    """Where a check writes its full report."""
    return f"{config.artifact_root.rstrip('/')}/drift/{monitor}/{identifier}.json"


def build_check_job(
    obj: dict[str, Any],
    monitor: DriftMonitor,
    identifier: str,
    reference: str,
    config: OperatorConfig,
) -> dict[str, Any]:
    """The Job that runs `gyre-runtime drift` for one check against a reference profile."""
    spec = monitor.spec
    name = monitor.metadata["name"]
    args = [
        "drift",
        "--monitor", name,
        "--check-id", identifier,
        "--reference", reference,
        "--requests", requests_uri(config, spec.inference_service_ref.name),
        "--methods", json.dumps(to_wire(spec.methods), sort_keys=True),
        "--min-samples", str(spec.min_samples),
        "--drifted-feature-share", f"{spec.policy.drifted_feature_share:g}",
        "--report", report_uri(config, name, identifier),
    ]  # fmt: skip
    if spec.window.requests is not None:
        args += ["--window-requests", str(spec.window.requests)]
    else:
        seconds = parse_duration(str(spec.window.duration)).total_seconds()
        args += ["--window-seconds", f"{seconds:g}"]
    for feature in spec.features or ():
        args += ["--feature", feature]
    container = Container(
        name="drift",
        image=config.runtime_image,
        args=tuple(args),
        secrets=config.secrets(),
        uris=(config.artifact_root,),
    )
    return build_job(
        JobRequest(
            owner=obj,
            name=check_job_name(name, identifier),
            component=COMPONENT,
            containers=(container,),
            backoff_limit=CHECK_BACKOFF_LIMIT,
            active_deadline_seconds=CHECK_DEADLINE_SECONDS,
            ttl_seconds_after_finished=CHECK_JOB_TTL_SECONDS,
            annotations={CHECK_ANNOTATION: identifier},
        )
    )


@dataclass(frozen=True)
class CheckOutcome:
    """A finished check: its result (None when it failed) and its history record."""

    check: DriftCheck | None
    record: CheckRecord
    reason: str  # the runtime's failure reason, or "" for a result


def check_outcome(job: ObservedJob, identifier: str, now: datetime) -> CheckOutcome:
    """What a finished check Job found, or why it found nothing."""
    time = job.completion_time or format_timestamp(now)
    result = job.result
    if job.state is JobState.SUCCEEDED and result is not None:
        check = _parse_check(result.data, identifier, time)
        if check is not None:
            return CheckOutcome(check, _record(check), "")
        failure = "InvalidResult: the check reported no valid result"
        return CheckOutcome(None, CheckRecord(id=identifier, time=time, failure=failure), "")
    reason = (result.reason if result is not None else "") or "CheckFailed"
    message = failure_text(job)
    if reason == EMPTY_WINDOW:
        check = DriftCheck(id=identifier, time=time, verdict=Verdict.INSUFFICIENT_DATA, samples=0)
        return CheckOutcome(check, _record(check), reason)
    failure = f"{reason}: {message}"[:1024]
    return CheckOutcome(None, CheckRecord(id=identifier, time=time, failure=failure), reason)


def _parse_check(data: dict[str, Any], identifier: str, time: str) -> DriftCheck | None:
    try:
        features = [_feature(f) for f in data.get("features") or []][:MAX_FEATURE_RESULTS]
        return DriftCheck(
            id=identifier,
            time=time,
            verdict=data["verdict"],
            samples=data["samples"],
            drifted_feature_share=data.get("driftedFeatureShare"),
            features=features,
            report_uri=data.get("reportUri"),
        )
    except (KeyError, TypeError, ValidationError):
        return None


def _feature(entry: dict[str, Any]) -> dict[str, Any]:
    """A feature result with only finite scores: JSON, and so a status, has no NaN."""
    scores = {k: v for k, v in (entry.get("scores") or {}).items() if _finite(v)}
    score = entry.get("score")
    return {
        "name": entry["name"],
        "method": entry["method"],
        "score": score if _finite(score) else 0.0,
        "drifted": entry["drifted"],
        "scores": scores or None,
    }


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _record(check: DriftCheck) -> CheckRecord:
    return CheckRecord(
        id=check.id,
        time=check.time,
        verdict=check.verdict,
        samples=check.samples,
        drifted_feature_share=check.drifted_feature_share,
        report_uri=check.report_uri,
    )


def seconds_until(moment: datetime, now: datetime) -> float:
    """Seconds from now to a moment, at least a tenth of a second (a requeue delay)."""
    return max((moment - now) / timedelta(seconds=1), 0.1)
