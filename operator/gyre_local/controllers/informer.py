"""List+watch of the Store as informers do: a full re-list on start and after a broken
watch, then events, delivered to level-based handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from gyre_local.store.store import ApiError, Store

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict[str, Any]], None]
RETRY_DELAY = 1.0


async def watch_forever(
    store: Store, group: str, plural: str, handle: EventHandler, *, read_only: bool = False
) -> None:
    """List then watch a resource across namespaces, forever, calling handle(type, obj).

    On start and after any watch failure the resource is listed again: every listed object is
    delivered as ADDED, and objects that vanished meanwhile as DELETED, so handlers only ever
    need to be level-based. With `read_only`, watched objects are the stored states themselves,
    not copies: for handlers that only read them (and keep nothing of them).
    """
    known: dict[str, dict[str, Any]] = {}
    while True:
        pause = 0.0
        try:
            items, version = store.list(group, plural)
            current = {item["metadata"]["uid"]: item for item in items}
            for uid, gone in known.items():
                if uid not in current:
                    _deliver(handle, "DELETED", gone)
            known = current
            for item in items:
                _deliver(handle, "ADDED", item)
            watch = store.watch(group, plural, resource_version=version, read_only=read_only)
            try:
                async for event_type, obj in watch:
                    if event_type not in ("ADDED", "MODIFIED", "DELETED"):
                        if event_type == "ERROR":
                            break
                        continue
                    uid = (obj.get("metadata") or {}).get("uid", "")
                    if event_type == "DELETED":
                        known.pop(uid, None)
                    else:
                        known[uid] = obj
                    _deliver(handle, event_type, obj)
            finally:
                watch.close()
        except ApiError as error:
            log.debug("watch of %s/%s restarts: %s", group, plural, error)
            pause = RETRY_DELAY
        await asyncio.sleep(pause)


def _deliver(handle: EventHandler, event_type: str, obj: dict[str, Any]) -> None:
    try:
        handle(event_type, obj)
    except Exception:
        log.exception("handling %s of %s failed", event_type, obj.get("metadata", {}).get("name"))
