"""How watch events reach the queues: cache the body, then trigger the owner's reconcile."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gyre_operator.api import GROUP
from gyre_operator.controllers.cache import key_of
from gyre_operator.controllers.context import Context


def track(context: Context, kind: str, event_type: str | None, body: Mapping[str, Any]) -> bool:
    """Keep the cache of a kind current with one watch event; whether the event is news
    (not the echo of a write the cache already holds, nor older than it)."""
    cache = context.cache(kind)
    if event_type == "DELETED":
        cache.forget(body)
        return True
    return cache.put(body)


def trigger(context: Context, kind: str, body: Mapping[str, Any]) -> None:
    """Reconcile the object now."""
    context.queues[kind].trigger(key_of(body))


def trigger_owner(context: Context, body: Mapping[str, Any]) -> None:
    """Reconcile the Gyre object that controls this child, if any."""
    metadata = body["metadata"]
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("controller") and str(reference.get("apiVersion", "")).startswith(
            f"{GROUP}/"
        ):
            queue = context.queues.get(reference["kind"])
            if queue is not None:
                queue.trigger((metadata.get("namespace", ""), reference["name"]))
