"""The CronJob controller (batch/v1), as kube-controller-manager's cronjob controller v2.

At each scheduled time a Job named `<cronjob>-<scheduled minutes since the epoch>` is created
from the job template: its name is the lock, so a slot is never run twice, even after the
controller restarts. Only the most recent missed time runs. "Now" comes from an injectable
clock, so that schedules can be driven without waiting for them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from gyre_local.clock import format_rfc3339, parse_rfc3339
from gyre_local.controllers.events import EventRecorder
from gyre_local.controllers.jobs import finished_condition
from gyre_local.controllers.objects import (
    controller_of,
    is_deleting,
    object_reference,
    owner_reference,
)
from gyre_local.controllers.reconciler import Controller, owner_keys
from gyre_local.store.schedules import Schedule, ScheduleError, load_zone, parse_schedule
from gyre_local.store.store import ApiError, Store

Clock = Callable[[], datetime]
Obj = dict[str, Any]

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# More missed times than this means a wedged controller or a skewed clock: warn about it.
MISSED_TIMES_WARNING = 100
# Requeues aim just past the next scheduled time, so that it has come when the sync runs.
NEXT_SCHEDULE_DELTA = timedelta(milliseconds=100)


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def most_recent_time(
    schedule: Schedule, earliest: datetime, now: datetime
) -> tuple[datetime | None, int]:
    """The latest scheduled time in (earliest, now], or None, and roughly how many were
    missed (counted by the interval between the first two times, as Kubernetes does)."""
    first = schedule.next_after(earliest)
    if now < first:
        return None, 0
    second = schedule.next_after(first)
    if now < second:
        return first, 1
    interval = round((second - first).total_seconds())
    if interval < 1:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    missed = int((now - first).total_seconds()) // interval + 1
    # Start an interval before the estimate: irregular schedules are walked exactly from there.
    latest = first
    moment = schedule.next_after(first + timedelta(seconds=(missed - 2) * interval))
    while moment <= now:
        latest = moment
        moment = schedule.next_after(moment)
    return latest, missed


def job_name(cron_job: Obj, scheduled: datetime) -> str:
    """The name of the Job of one scheduled time: the lock against running a slot twice."""
    return f"{cron_job['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def format_in_zone(moment: datetime, zone: tzinfo) -> str:
    """A time as Go formats time.RFC3339 in a zone: `Z` for a zero offset, else ±hh:mm."""
    local = moment.astimezone(zone)
    offset = local.utcoffset() or timedelta()
    if not offset:
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    sign = "-" if offset < timedelta() else "+"
    minutes = int(abs(offset).total_seconds()) // 60
    return f"{local.strftime('%Y-%m-%dT%H:%M:%S')}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def job_from_template(cron_job: Obj, scheduled: datetime, zone: tzinfo) -> Obj:
    """The Job of one scheduled time: the template's labels, annotations (plus the scheduled
    timestamp in the CronJob's zone) and spec, controlled by the CronJob."""
    template = copy.deepcopy((cron_job.get("spec") or {}).get("jobTemplate") or {})
    template_metadata = template.get("metadata") or {}
    annotations = dict(template_metadata.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = format_in_zone(scheduled, zone)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(cron_job, scheduled),
            "namespace": cron_job["metadata"]["namespace"],
            "labels": dict(template_metadata.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [owner_reference(cron_job)],
        },
        "spec": template.get("spec") or {},
    }


def start_order(job: Obj) -> tuple[bool, datetime, str]:
    """Oldest first by status.startTime (unstarted last), then by name."""
    started = (job.get("status") or {}).get("startTime")
    moment = parse_rfc3339(started) if started else datetime.max.replace(tzinfo=UTC)
    return started is None, moment, job["metadata"]["name"]


def _last_known_start(cron_job: Obj) -> datetime:
    """status.lastScheduleTime, or the creation time of a CronJob that never ran."""
    since = cron_job["status"].get("lastScheduleTime") or cron_job["metadata"]["creationTimestamp"]
    return parse_rfc3339(since)


def _succeeded(job: Obj) -> bool:
    """Whether a Job's Complete condition is True."""
    finished = finished_condition(job)
    return finished is not None and finished["type"] == "Complete"


class CronJobController(Controller):
    """Creates a CronJob's Jobs at their scheduled times and keeps its status and history."""

    resource = ("batch", "cronjobs")

    def __init__(self, store: Store, now: Clock = utc_now) -> None:
        super().__init__(store)
        self.now = now
        self.events = EventRecorder(store, "cronjob-controller")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """Jobs, mapped to the CronJob that controls them."""
        return [("batch", "jobs", owner_keys("CronJob"))]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Trim the history, follow the Jobs, start the due one; seconds until the next time."""
        stored = self.primary(namespace, name)
        if stored is None:
            return None
        cron_job = copy.deepcopy(stored)
        cron_job["status"] = cron_job.get("status") or {}
        jobs = self._jobs(cron_job)
        try:
            self._remove_old_jobs(cron_job, jobs)
            return self._sync(cron_job, jobs)
        finally:
            self._write_status(stored, cron_job["status"])

    def _jobs(self, cron_job: Obj) -> list[Obj]:
        """The Jobs whose controller reference names this CronJob."""
        items, _ = self.store.list("batch", "jobs", cron_job["metadata"]["namespace"])
        name = cron_job["metadata"]["name"]
        return [
            job
            for job in items
            if (reference := controller_of(job)) is not None
            and reference.get("kind") == "CronJob"
            and reference.get("name") == name
        ]

    def _remove_old_jobs(self, cron_job: Obj, jobs: list[Obj]) -> None:
        """Delete the oldest finished Jobs beyond the successful and failed history limits."""
        spec = cron_job.get("spec") or {}
        finished = [(job, finished_condition(job)) for job in jobs]
        for kind, limit_field in (
            ("Complete", "successfulJobsHistoryLimit"),
            ("Failed", "failedJobsHistoryLimit"),
        ):
            limit = spec.get(limit_field)
            if limit is None:
                continue
            kept = sorted(
                (job for job, done in finished if done is not None and done["type"] == kind),
                key=start_order,
            )
            for job in kept[: max(0, len(kept) - int(limit))]:
                self._delete_job(cron_job, job)

    def _delete_job(self, cron_job: Obj, job: Obj) -> bool:
        """Delete a Job (its pods in the background) and drop it from status.active."""
        metadata = job["metadata"]
        try:
            self.store.delete(
                "batch",
                "jobs",
                metadata["namespace"],
                metadata["name"],
                propagation_policy="Background",
            )
        except ApiError as error:
            self.events.warning(cron_job, "FailedDelete", f"Deleted job: {error.message}")
            return False
        self._drop_active(cron_job, metadata["uid"])
        self.events.normal(cron_job, "SuccessfulDelete", f"Deleted job {metadata['name']}")
        return True

    @staticmethod
    def _drop_active(cron_job: Obj, uid: str) -> None:
        """Remove a Job from status.active (the field goes when it empties)."""
        status = cron_job["status"]
        status["active"] = [r for r in status.get("active") or [] if r.get("uid") != uid]
        if not status["active"]:
            del status["active"]

    @staticmethod
    def _active_uids(cron_job: Obj) -> set[str]:
        """The uids of the Jobs in status.active."""
        return {r.get("uid", "") for r in cron_job["status"].get("active") or []}

    def _follow_jobs(self, cron_job: Obj, jobs: list[Obj]) -> None:
        """Finished Jobs leave status.active (their success moves lastSuccessfulTime); an
        unfinished Job missing from it is reported; active Jobs that are gone are dropped."""
        status = cron_job["status"]
        for job in jobs:
            uid, name = job["metadata"]["uid"], job["metadata"]["name"]
            finished = finished_condition(job)
            if finished is None:
                if uid not in self._active_uids(cron_job):
                    self.events.warning(
                        cron_job,
                        "UnexpectedJob",
                        f"Saw a job that the controller did not create or forgot: {name}",
                    )
                continue
            if uid in self._active_uids(cron_job):
                self._drop_active(cron_job, uid)
                self.events.normal(
                    cron_job,
                    "SawCompletedJob",
                    f"Saw completed job: {name}, condition: {finished['type']}",
                )
            completed = (job.get("status") or {}).get("completionTime")
            if _succeeded(job) and completed:
                last = status.get("lastSuccessfulTime")
                if last is None or parse_rfc3339(completed) > parse_rfc3339(last):
                    status["lastSuccessfulTime"] = completed
        known = {job["metadata"]["uid"] for job in jobs}
        for reference in list(status.get("active") or []):
            if reference.get("uid") in known:
                continue
            if self.find("batch", "jobs", reference["namespace"], reference["name"]) is None:
                self.events.normal(
                    cron_job, "MissingJob", f"Active job went missing: {reference['name']}"
                )
                self._drop_active(cron_job, reference.get("uid", ""))

    def _sync(self, cron_job: Obj, jobs: list[Obj]) -> float | None:
        """Follow the Jobs, then start the Job of the most recent unmet time, if one is due."""
        self._follow_jobs(cron_job, jobs)
        spec = cron_job.get("spec") or {}
        if is_deleting(cron_job):
            return None
        zone: tzinfo = UTC
        if (zone_name := spec.get("timeZone")) is not None:
            try:
                zone = load_zone(zone_name)
            except ScheduleError as error:
                self.events.warning(
                    cron_job, "UnknownTimeZone", f'invalid timeZone: "{zone_name}": {error}'
                )
                return None
        if spec.get("suspend"):
            return None
        text = spec.get("schedule", "")
        if "TZ" in text:
            self.events.warning(
                cron_job,
                "UnsupportedSchedule",
                f'CRON_TZ or TZ used in schedule "{text}" is not officially supported, see '
                "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ "
                "for more details",
            )
        try:
            schedule = parse_schedule(text, zone)
        except ScheduleError as error:
            self.events.warning(
                cron_job, "UnparseableSchedule", f'unparseable schedule: "{text}" : {error}'
            )
            return None
        now = self.now()
        try:
            scheduled = self._unmet_time(cron_job, schedule, now)
        except ScheduleError as error:
            self.events.warning(cron_job, "InvalidSchedule", f"invalid schedule: {text} : {error}")
            return None
        if scheduled is not None and not self._start(cron_job, scheduled, schedule.zone, now):
            return None
        return self._until_next(cron_job, schedule, now)

    def _unmet_time(self, cron_job: Obj, schedule: Schedule, now: datetime) -> datetime | None:
        """The most recent scheduled time not yet processed, no earlier than the starting
        deadline allows; warns when too many times were missed."""
        spec = cron_job.get("spec") or {}
        earliest = _last_known_start(cron_job)
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - timedelta(seconds=int(deadline)))
        scheduled, missed = most_recent_time(schedule, earliest, now)
        if missed > MISSED_TIMES_WARNING:
            self.events.warning(
                cron_job,
                "TooManyMissedTimes",
                f"too many missed start times: {missed}. Set or decrease "
                ".spec.startingDeadlineSeconds or check clock skew",
            )
        return scheduled

    def _start(self, cron_job: Obj, scheduled: datetime, zone: tzinfo, now: datetime) -> bool:
        """Start the Job of a scheduled time unless it is too late, already done, or forbidden
        by the concurrency policy. False when its Job exists and is not this CronJob's to
        take up: as Kubernetes does, the CronJob then waits for a change before looking again."""
        spec, status = cron_job.get("spec") or {}, cron_job["status"]
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
            self.events.warning(
                cron_job,
                "MissSchedule",
                "Missed scheduled time to start a job: "
                + scheduled.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
            )
            return True
        name = job_name(cron_job, scheduled)
        last = status.get("lastScheduleTime")
        if any(r.get("name") == name for r in status.get("active") or []) or (
            last is not None and parse_rfc3339(last) == scheduled
        ):
            return True
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and status.get("active"):
            self.events.normal(
                cron_job,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy "
                "is Forbid",
            )
            return True
        if policy == "Replace":
            self._replace_active(cron_job)
        job = self._create_job(cron_job, scheduled, zone)
        if job is None:
            return False
        status["active"] = [*(status.get("active") or []), object_reference(job)]
        status["lastScheduleTime"] = format_rfc3339(scheduled)
        return True

    def _replace_active(self, cron_job: Obj) -> None:
        """Delete every active Job, as concurrencyPolicy Replace does before a new one."""
        for reference in list(cron_job["status"].get("active") or []):
            job = self.find("batch", "jobs", reference["namespace"], reference["name"])
            if job is None:
                message = f'jobs.batch "{reference["name"]}" not found'
                self.events.warning(cron_job, "FailedGet", f"Get job: {message}")
                raise ApiError(404, "NotFound", message)
            if not self._delete_job(cron_job, job):
                raise ApiError(500, "InternalError", f"could not replace job {reference['name']}")

    def _create_job(self, cron_job: Obj, scheduled: datetime, zone: tzinfo) -> Obj | None:
        """Create the Job of a scheduled time. When it exists already (created before a
        restart), it is taken up if this CronJob controls it and status.active misses it."""
        wanted = job_from_template(cron_job, scheduled, zone)
        namespace, name = wanted["metadata"]["namespace"], wanted["metadata"]["name"]
        try:
            created = self.store.create("batch", "jobs", namespace, wanted)
        except ApiError as error:
            if error.reason != "AlreadyExists":
                self.events.warning(cron_job, "FailedCreate", f"Error creating job: {error}")
                raise
            existing = self.find("batch", "jobs", namespace, name)
            reference = controller_of(existing) if existing is not None else None
            if existing is None or reference is None:
                return None
            if reference.get("uid") != cron_job["metadata"]["uid"]:
                return None
            if existing["metadata"]["uid"] in self._active_uids(cron_job):
                return None
            return existing
        self.events.normal(cron_job, "SuccessfulCreate", f"Created job {name}")
        return created

    @staticmethod
    def _until_next(cron_job: Obj, schedule: Schedule, now: datetime) -> float:
        """Seconds until just after the next scheduled time."""
        earliest = _last_known_start(cron_job)
        try:
            latest, _ = most_recent_time(schedule, earliest, now)
        except ScheduleError:
            latest = now
        following = schedule.next_after(latest or earliest)
        return (following + NEXT_SCHEDULE_DELTA - now).total_seconds()

    def _write_status(self, stored: Obj, status: Obj) -> None:
        """Write status when it changed (an empty active list omitted, as Kubernetes does)."""
        if status == (stored.get("status") or {}):
            return
        updated = copy.deepcopy(stored)
        updated["status"] = status
        metadata = stored["metadata"]
        self.store.replace(
            "batch",
            "cronjobs",
            metadata["namespace"],
            metadata["name"],
            updated,
            subresource="status",
        )
