"""Child Jobs: every change of a Gyre Job reaches its owner's reconcile (watched, not polled)."""

from __future__ import annotations

from typing import Any

import kopf

from gyre_operator.builders.jobs import concerns_owner
from gyre_operator.builders.naming import MANAGED_BY
from gyre_operator.controllers.cache import key_of
from gyre_operator.controllers.context import Context
from gyre_operator.controllers.watch import track, trigger_owner


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED_BY, id="child-job")
async def job_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A Gyre Job changed: remember it, and reconcile its owner when the change concerns it."""
    context: Context = memo.context
    previous = context.cache("Job").get(key_of(body))
    if not track(context, "Job", event.get("type"), body):
        return
    current = None if event.get("type") == "DELETED" else dict(body)
    if concerns_owner(previous, current):
        trigger_owner(context, body)
