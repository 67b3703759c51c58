"""The CronJob controller over the local API server, its clock driven by the tests.

CronJobs and Jobs are written and read over HTTP; the controller reconciles on the server's
loop with a clock each test sets, so that schedules are crossed without waiting for them. The
tests finish Jobs by writing their status, as the Job controller would.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import LocalApiServer
from kubectl_runner import kubectl_runner
from kubernetes import client
from kubernetes.client.rest import ApiException

from gyre_local.cluster import LocalCluster, wait_for
from gyre_local.controllers.cronjobs import CronJobController

NS = "default"
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# The last scheduled time every CronJob here starts from.
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Driver:
    """A CronJobController on the API server's loop whose clock reads `now`."""

    def __init__(self, apiserver: LocalApiServer) -> None:
        self.apiserver = apiserver
        self.now = T0
        self.controller = CronJobController(apiserver.store, now=lambda: self.now)

    def sync(self, name: str, at: datetime) -> float | None:
        """Reconcile one CronJob at a given time; the seconds until it wants to look again."""
        self.now = at
        return self.apiserver.call(self.controller.reconcile, NS, name)

    def restart(self) -> None:
        """A new controller, remembering nothing of the old one (as after a restart)."""
        self.controller = CronJobController(self.apiserver.store, now=lambda: self.now)


@pytest.fixture
def driver(apiserver: LocalApiServer) -> Driver:
    return Driver(apiserver)


@pytest.fixture
def batch(kube_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(kube_client)


@pytest.fixture
def core(kube_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


def minutes(count: float) -> timedelta:
    return timedelta(minutes=count)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def slot_name(name: str, moment: datetime) -> str:
    return f"{name}-{int(moment.timestamp()) // 60}"


def create_cron_job(
    batch: client.BatchV1Api,
    name: str,
    schedule: str = "* * * * *",
    *,
    last_schedule: datetime | None = T0,
    **spec: Any,
) -> dict[str, Any]:
    """A CronJob whose status says it last ran at last_schedule."""
    body = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            **spec,
            "jobTemplate": {
                "metadata": {"labels": {"team": "ml"}, "annotations": {"note": "nightly"}},
                "spec": {
                    "backoffLimit": 2,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "main", "image": "busybox"}],
                        }
                    },
                },
            },
        },
    }
    created: dict[str, Any] = batch.api_client.sanitize_for_serialization(
        batch.create_namespaced_cron_job(NS, body)
    )
    if last_schedule is not None:
        status = {"status": {"lastScheduleTime": stamp(last_schedule)}}
        batch.patch_namespaced_cron_job_status(name, NS, status)
    return created


def jobs_of(batch: client.BatchV1Api, name: str) -> list[str]:
    return sorted(
        j.metadata.name
        for j in batch.list_namespaced_job(NS).items
        if any(o.name == name for o in j.metadata.owner_references or [])
    )


def finish(batch: client.BatchV1Api, job: str, kind: str, started: datetime) -> None:
    """Mark a Job Complete or Failed, as the Job controller does."""
    now = stamp(started + minutes(0.5))
    conditions = [{"type": kind, "status": "True", "lastTransitionTime": now}]
    if kind == "Complete":
        conditions.insert(0, {"type": "SuccessCriteriaMet", "status": "True"})
    status: dict[str, Any] = {"startTime": stamp(started), "conditions": conditions}
    if kind == "Complete":
        status.update(completionTime=now, succeeded=1)
    else:
        status["failed"] = 1
    batch.patch_namespaced_job_status(job, NS, {"status": status})


def events_of(core: client.CoreV1Api, name: str) -> list[tuple[str, str, str, int]]:
    """(type, reason, message, count) of a CronJob's events, oldest first."""
    items = core.list_namespaced_event(
        NS, field_selector=f"involvedObject.kind=CronJob,involvedObject.name={name}"
    ).items
    return [(e.type, e.reason, e.message, e.count) for e in items]


def status_of(batch: client.BatchV1Api, name: str) -> Any:
    return batch.read_namespaced_cron_job_status(name, NS).status


def test_job_at_the_scheduled_time(
    driver: Driver, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    cron_job = create_cron_job(batch, "tick")
    assert driver.sync("tick", T0 + timedelta(seconds=30)) == pytest.approx(30.1)
    assert jobs_of(batch, "tick") == []
    after = driver.sync("tick", T0 + timedelta(seconds=65))
    assert after == pytest.approx(55.1)
    name = slot_name("tick", T0 + minutes(1))
    assert jobs_of(batch, "tick") == [name]
    job = batch.read_namespaced_job(name, NS)
    assert job.metadata.labels["team"] == "ml"
    assert job.metadata.annotations == {"note": "nightly", SCHEDULED: "2026-01-01T00:01:00Z"}
    (owner,) = job.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("CronJob", "tick", cron_job["metadata"]["uid"])
    assert owner.controller and owner.block_owner_deletion
    assert job.spec.backoff_limit == 2
    status = status_of(batch, "tick")
    assert status.last_schedule_time == T0 + minutes(1)
    (active,) = status.active
    assert (active.kind, active.name, active.uid) == ("Job", name, job.metadata.uid)
    assert active.api_version == "batch/v1" and active.namespace == NS
    assert events_of(core, "tick") == [("Normal", "SuccessfulCreate", f"Created job {name}", 1)]


def test_no_second_job_for_a_slot_after_a_resync_or_a_restart(
    driver: Driver, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    create_cron_job(batch, "once")
    driver.sync("once", T0 + minutes(1.1))
    driver.sync("once", T0 + minutes(1.2))
    # As if the controller had stopped after creating the Job, before writing the status.
    batch.patch_namespaced_cron_job_status(
        "once", NS, {"status": {"active": None, "lastScheduleTime": stamp(T0)}}
    )
    driver.restart()
    driver.sync("once", T0 + minutes(1.3))
    name = slot_name("once", T0 + minutes(1))
    assert jobs_of(batch, "once") == [name]
    assert [a.name for a in status_of(batch, "once").active] == [name]
    assert [(r, n) for _t, r, _m, n in events_of(core, "once")] == [
        ("SuccessfulCreate", 1),
        ("UnexpectedJob", 1),
    ]


def test_only_the_most_recent_missed_time_runs(
    driver: Driver, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    create_cron_job(batch, "late")
    driver.sync("late", T0 + minutes(5.5))
    assert jobs_of(batch, "late") == [slot_name("late", T0 + minutes(5))]
    assert status_of(batch, "late").last_schedule_time == T0 + minutes(5)


def test_more_than_a_hundred_missed_times_are_warned_about(
    driver: Driver, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    create_cron_job(batch, "wedged")
    driver.sync("wedged", T0 + minutes(200.5))
    assert jobs_of(batch, "wedged") == [slot_name("wedged", T0 + minutes(200))]
    warning = (
        "Warning",
        "TooManyMissedTimes",
        "too many missed start times: 200. Set or decrease .spec.startingDeadlineSeconds or "
        "check clock skew",
        1,
    )
    assert warning in events_of(core, "wedged")


def test_starting_deadline_skips_times_older_than_it(
    driver: Driver, batch: client.BatchV1Api
) -> None:
    create_cron_job(batch, "strict", startingDeadlineSeconds=10)
    assert driver.sync("strict", T0 + timedelta(seconds=90)) == pytest.approx(30.1)
    assert jobs_of(batch, "strict") == []
    driver.sync("strict", T0 + timedelta(seconds=125))
    assert jobs_of(batch, "strict") == [slot_name("strict", T0 + minutes(2))]


def test_forbid_skips_while_a_job_is_active(
    driver: Driver, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    create_cron_job(batch, "single", concurrencyPolicy="Forbid")
    driver.sync("single", T0 + minutes(1.1))
    first = slot_name("single", T0 + minutes(1))
    assert driver.sync("single", T0 + minutes(2.1)) == pytest.approx(0.9 * 60 + 0.1)
    assert jobs_of(batch, "single") == [first]
    assert ("Normal", "JobAlreadyActive") in [(t, r) for t, r, _m, _n in events_of(core, "single")]
    finish(batch, first, "Complete", T0 + minutes(1))
    # The missed time still runs, late, once the prior Job finished.
    driver.sync("single", T0 + minutes(2.2))
    second = slot_name("single", T0 + minutes(2))
    assert jobs_of(batch, "single") == [first, second]
    status = status_of(batch, "single")
    assert [a.name for a in status.active] == [second]
    assert status.last_successful_time == T0 + minutes(1.5)
    assert (
        "Normal",
        "SawCompletedJob",
        f"Saw completed job: {first}, condition: Complete",
        1,
    ) in events_of(core, "single")


def test_replace_deletes_the_active_job_first(
    driver: Driver, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    create_cron_job(batch, "fresh", concurrencyPolicy="Replace")
    driver.sync("fresh", T0 + minutes(1.1))
    driver.sync("fresh", T0 + minutes(2.1))
    old, new = slot_name("fresh", T0 + minutes(1)), slot_name("fresh", T0 + minutes(2))
    with pytest.raises(ApiException) as gone:
        batch.read_namespaced_job(old, NS)
    assert gone.value.status == 404
    assert jobs_of(batch, "fresh") == [new]
    assert [a.name for a in status_of(batch, "fresh").active] == [new]
    assert [(r, m) for _t, r, m, _n in events_of(core, "fresh")] == [
        ("SuccessfulCreate", f"Created job {old}"),
        ("SuccessfulDelete", f"Deleted job {old}"),
        ("SuccessfulCreate", f"Created job {new}"),
    ]


def test_allow_runs_jobs_side_by_side(driver: Driver, batch: client.BatchV1Api) -> None:
    create_cron_job(batch, "many")
    driver.sync("many", T0 + minutes(1.1))
    driver.sync("many", T0 + minutes(2.1))
    names = [slot_name("many", T0 + minutes(n)) for n in (1, 2)]
    assert jobs_of(batch, "many") == names
    assert [a.name for a in status_of(batch, "many").active] == names


def test_suspended_cron_job_starts_nothing(driver: Driver, batch: client.BatchV1Api) -> None:
    create_cron_job(batch, "paused", suspend=True)
    assert driver.sync("paused", T0 + minutes(3.1)) is None
    assert jobs_of(batch, "paused") == []
    batch.patch_namespaced_cron_job("paused", NS, {"spec": {"suspend": False}})
    driver.sync("paused", T0 + minutes(3.2))
    assert jobs_of(batch, "paused") == [slot_name("paused", T0 + minutes(3))]


def test_history_limits_delete_the_oldest_finished_jobs(
    driver: Driver, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    create_cron_job(batch, "kept", successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1)
    names = []
    for n in range(1, 5):
        driver.sync("kept", T0 + minutes(n + 0.1))
        names.append(slot_name("kept", T0 + minutes(n)))
    outcomes = ["Complete", "Complete", "Failed", "Failed"]
    for n, (name, kind) in enumerate(zip(names, outcomes, strict=True)):
        finish(batch, name, kind, T0 + minutes(n + 1))
    driver.sync("kept", T0 + minutes(4.5))
    assert jobs_of(batch, "kept") == [names[1], names[3]]
    reasons = [(r, m) for _t, r, m, _n in events_of(core, "kept")]
    assert ("SuccessfulDelete", f"Deleted job {names[0]}") in reasons
    assert ("SuccessfulDelete", f"Deleted job {names[2]}") in reasons
    status = status_of(batch, "kept")
    assert not status.active
    assert status.last_successful_time == T0 + minutes(2.5)


def test_time_zone_sets_the_times_and_the_annotation(
    driver: Driver, batch: client.BatchV1Api
) -> None:
    create_cron_job(batch, "tokyo", "0 9 * * *", timeZone="Asia/Tokyo")
    # 09:00 in Tokyo is 00:00 UTC: the next time after T0 is a day later.
    assert driver.sync("tokyo", T0 + minutes(1)) == pytest.approx((24 * 60 - 1) * 60 + 0.1)
    driver.sync("tokyo", T0 + timedelta(days=1, seconds=30))
    name = slot_name("tokyo", T0 + timedelta(days=1))
    assert jobs_of(batch, "tokyo") == [name]
    annotations = batch.read_namespaced_job(name, NS).metadata.annotations
    assert annotations[SCHEDULED] == "2026-01-02T09:00:00+09:00"


def test_macros_are_schedules(driver: Driver, batch: client.BatchV1Api) -> None:
    create_cron_job(batch, "hourly", "@hourly")
    driver.sync("hourly", T0 + minutes(61))
    assert jobs_of(batch, "hourly") == [slot_name("hourly", T0 + minutes(60))]


@pytest.mark.parametrize(
    ("spec", "field", "detail"),
    [
        ({"timeZone": "Mars/Olympus"}, "spec.timeZone", "unknown time zone Mars/Olympus"),
        ({"timeZone": "Local"}, "spec.timeZone", "timeZone must be an explicit time zone"),
        ({"schedule": "every minute"}, "spec.schedule", "expected exactly 5 fields, found 2"),
        (
            {"schedule": "TZ=Asia/Tokyo 0 9 * * *"},
            "spec.schedule",
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ),
        (
            {"schedule": "CRON_TZ=UTC 0 9 * * *", "timeZone": "UTC"},
            "spec.schedule",
            "cannot use both timeZone field and TZ or CRON_TZ in schedule",
        ),
    ],
)
def test_the_api_server_refuses_bad_schedules_and_zones_naming_the_field(
    batch: client.BatchV1Api, spec: dict[str, Any], field: str, detail: str
) -> None:
    with pytest.raises(client.ApiException) as refused:
        create_cron_job(batch, "bad", **spec)
    assert refused.value.status == 422
    causes = json.loads(refused.value.body)["details"]["causes"]
    assert any(c["field"] == field and detail in c["message"] for c in causes), causes


def test_a_schedule_that_never_comes_is_warned_about(
    driver: Driver, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    create_cron_job(batch, "never", "59 23 31 2 *")
    assert driver.sync("never", T0 + minutes(2)) is None
    assert jobs_of(batch, "never") == []
    ((kind, reason, message, _count),) = events_of(core, "never")
    assert (kind, reason) == ("Warning", "InvalidSchedule")
    assert message.startswith("invalid schedule: 59 23 31 2 * : ")


def test_the_local_cluster_runs_the_controller(cluster: LocalCluster) -> None:
    api = client.BatchV1Api(cluster.api_client())
    create_cron_job(api, "elsewhere", "59 23 31 2 *")
    events = client.CoreV1Api(cluster.api_client())
    (event,) = wait_for(lambda: events_of(events, "elsewhere"))
    assert event[:2] == ("Warning", "InvalidSchedule")


def run_controller(apiserver: LocalApiServer) -> asyncio.Task[None]:
    """The controller running on the server's loop, its clock one second before T0 + 1 min."""
    shift = T0 + timedelta(seconds=59) - datetime.now(UTC)
    controller = CronJobController(apiserver.store, now=lambda: datetime.now(UTC) + shift)
    task: asyncio.Task[None] = apiserver.call(lambda: asyncio.ensure_future(controller.run()))
    return task


def test_running_controller_starts_the_job_at_the_next_minute_and_sees_it_finish(
    apiserver: LocalApiServer, batch: client.BatchV1Api, tmp_path: Path
) -> None:
    create_cron_job(batch, "live")
    task = run_controller(apiserver)
    try:
        name = slot_name("live", T0 + minutes(1))
        wait_for(lambda: jobs_of(batch, "live") == [name], timeout=10)
        wait_for(lambda: status_of(batch, "live").active, timeout=10)
        kubectl = kubectl_runner(apiserver.kubeconfig, tmp_path / "cache")
        row = kubectl("get", "cronjob", "live", "--no-headers").stdout.split()
        assert row[:6] == ["live", "*", "*", "*", "*", "*"]
        assert row[6:9] == ["<none>", "False", "1"] and row[9] != "<none>"
        finish(batch, name, "Complete", T0 + minutes(1))
        wait_for(lambda: not status_of(batch, "live").active, timeout=10)
        assert status_of(batch, "live").last_successful_time == T0 + minutes(1.5)
    finally:
        apiserver.call(task.cancel)
