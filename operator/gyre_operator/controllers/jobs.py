"""Child Jobs: every change of a Gyre Job reaches its owner's reconcile (watched, not polled)."""

from __future__ import annotations

from typing import Any

import kopf

from gyre_operator.builders.jobs import job_state
from gyre_operator.builders.naming import MANAGED_BY
from gyre_operator.controllers.cache import key_of
from gyre_operator.controllers.context import Context
from gyre_operator.controllers.watch import track, trigger_owner


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED_BY, id="child-job")
async def job_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A Gyre Job started, finished or went: remember it and reconcile the object that owns it.

    Other changes (pods becoming active or ready) change nothing its owner decides.
    """
    context: Context = memo.context
    previous = context.cache("Job").get(key_of(body))
    if not track(context, "Job", event.get("type"), body):
        return
    if (
        previous is None
        or event.get("type") == "DELETED"
        or job_state(previous) != job_state(dict(body))
    ):
        trigger_owner(context, body)
