"""Cron schedules of CronJobs as Kubernetes reads them (robfig/cron's ParseStandard, IANA time
zones): what the API server validates and the CronJob controller runs by."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from gyre_local.store.errors import Causes

_ZONE_PREFIXES = ("CRON_TZ=", "TZ=")


class ScheduleError(ValueError):
    """A schedule that cannot be parsed, or whose times cannot be computed."""


@dataclass(frozen=True)
class Schedule:
    """A standard five-field cron expression (or @hourly-style macro) in a time zone."""

    expression: str
    zone: tzinfo

    def next_after(self, moment: datetime) -> datetime:
        """The first scheduled time strictly after moment."""
        try:
            following: datetime = croniter(self.expression, moment.astimezone(self.zone)).get_next(
                datetime
            )
        except CroniterError as error:
            raise ScheduleError(str(error)) from error
        return following


def load_zone(name: str) -> ZoneInfo:
    """An IANA time zone; ScheduleError (with Go's wording) when it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ScheduleError(f"unknown time zone {name}") from error


def parse_schedule(text: str, zone: tzinfo) -> Schedule:
    """A schedule as robfig/cron's ParseStandard reads it: five fields or a macro, with an
    optional `CRON_TZ=`/`TZ=` prefix naming the zone (which then wins over zone)."""
    expression = text.strip()
    for prefix in _ZONE_PREFIXES:
        if expression.startswith(prefix):
            name, _, expression = expression[len(prefix) :].partition(" ")
            zone = load_zone(name)
            expression = expression.strip()
    if not expression.startswith("@") and len(expression.split()) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(expression.split())}")
    if not croniter.is_valid(expression):
        raise ScheduleError(f"invalid expression {expression}")
    return Schedule(expression, zone)


def cron_job_causes(obj: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    """What kube-apiserver refuses in a CronJob's schedule and time zone (a TZ prefix only in a
    new schedule: an object already stored with one keeps it)."""
    spec = obj.get("spec") or {}
    old_schedule = str(((old or {}).get("spec") or {}).get("schedule") or "")
    schedule, zone = spec.get("schedule"), spec.get("timeZone")
    causes: Causes = []
    if not schedule:
        causes.append(("FieldValueRequired", "spec.schedule", "Required value"))
    else:
        problems = []
        try:
            parse_schedule(str(schedule), ZoneInfo("UTC"))
        except ScheduleError as error:
            problems.append(str(error))
        if "TZ" in schedule and zone is not None:
            problems.append("cannot use both timeZone field and TZ or CRON_TZ in schedule")
        elif "TZ" in schedule and "TZ" not in old_schedule:
            problems.append("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
        causes += [_invalid("spec.schedule", schedule, p) for p in problems]
    if zone is not None:
        if zone == "":
            causes.append(
                _invalid("spec.timeZone", zone, "timeZone must be nil or non-empty string")
            )
        elif zone.lower() == "local":
            causes.append(
                _invalid(
                    "spec.timeZone",
                    zone,
                    "timeZone must be an explicit time zone as defined in "
                    "https://www.iana.org/time-zones",
                )
            )
        else:
            try:
                load_zone(zone)
            except ScheduleError as error:
                causes.append(_invalid("spec.timeZone", zone, str(error)))
    return causes


def _invalid(path: str, value: Any, detail: str) -> tuple[str, str, str]:
    return ("FieldValueInvalid", path, f"Invalid value: {json.dumps(value)}: {detail}")
