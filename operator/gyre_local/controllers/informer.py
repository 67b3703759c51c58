"""In-process controllers of the local cluster, and the list+watch machinery they share.

Controllers talk to the Store directly (no HTTP hop) but behave like kube-controller-manager:
level-based reconciles keyed by namespace/name, fed by watches, resynced on start, idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from gyre_local.store.store import ApiError, Store

log = logging.getLogger(__name__)

Key = tuple[str, str]
EventHandler = Callable[[str, dict[str, Any]], None]
# Kubernetes' alphabet for generated name suffixes: no vowels, no look-alike characters.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
RETRY_DELAY = 1.0


def random_suffix(length: int = 5) -> str:
    """A random name suffix like the ones Kubernetes generates."""
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def key_of(obj: dict[str, Any]) -> Key:
    """The namespace/name key of an object."""
    metadata = obj.get("metadata") or {}
    return metadata.get("namespace", ""), metadata["name"]


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ownerReference marked controller: true, if any."""
    for reference in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return dict(reference)
    return None


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    """Whether obj's controller reference points at owner (by uid)."""
    reference = controller_of(obj)
    return reference is not None and reference.get("uid") == owner["metadata"]["uid"]


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """A controller ownerReference to owner, blocking its foreground deletion."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_deleting(obj: dict[str, Any]) -> bool:
    """Whether the object has a deletionTimestamp."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def pod_ready(pod: dict[str, Any]) -> bool:
    """Whether a pod's Ready condition is True."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def pod_terminal(pod: dict[str, Any]) -> bool:
    """Whether a pod reached Succeeded or Failed."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


async def watch_forever(store: Store, group: str, plural: str, handle: EventHandler) -> None:
    """List then watch a resource across namespaces, forever, calling handle(type, obj).

    On start and after any watch failure the resource is listed again: every listed object is
    delivered as ADDED, and objects that vanished meanwhile as DELETED, so handlers only ever
    need to be level-based.
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
            watch = store.watch(group, plural, resource_version=version)
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


class Controller(ABC):
    """A level-based controller: a deduplicating work queue of keys and a reconcile function.

    Subclasses set `resource` (group, plural) of the primary kind, may add `sources` mapping
    other kinds' events to primary keys, and implement `reconcile`, which returns the seconds
    after which to look again (or None).
    """

    resource: tuple[str, str]

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def sources(self) -> Iterable[tuple[str, str, Callable[[dict[str, Any]], Iterable[Key]]]]:
        """(group, plural, object -> primary keys) for each watched kind besides the primary."""
        return ()

    @abstractmethod
    def reconcile(self, namespace: str, name: str) -> float | None:
        """Drive one object towards its desired state; return seconds until a recheck, or None."""

    def enqueue(self, key: Key, after: float = 0.0) -> None:
        """Queue a key now or after a delay (the earliest pending delay wins)."""
        if after > 0:
            timer = self._timers.get(key)
            loop = asyncio.get_running_loop()
            if timer is not None and timer.when() <= loop.time() + after:
                return
            if timer is not None:
                timer.cancel()
            self._timers[key] = loop.call_later(after, self._fire, key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.enqueue(key)

    async def run(self) -> None:
        """Watch every source and reconcile queued keys until cancelled."""
        group, plural = self.resource
        watches = [
            asyncio.create_task(
                watch_forever(self.store, group, plural, lambda _t, obj: self.enqueue(key_of(obj)))
            )
        ]
        for source_group, source_plural, mapper in self.sources():
            watches.append(
                asyncio.create_task(
                    watch_forever(self.store, source_group, source_plural, self._mapped(mapper))
                )
            )
        try:
            await self._work()
        finally:
            for task in watches:
                task.cancel()
            for timer in self._timers.values():
                timer.cancel()
            await asyncio.gather(*watches, return_exceptions=True)

    def _mapped(self, mapper: Callable[[dict[str, Any]], Iterable[Key]]) -> EventHandler:
        def handle(_event_type: str, obj: dict[str, Any]) -> None:
            for key in mapper(obj):
                self.enqueue(key)

        return handle

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                after = self.reconcile(*key)
            except ApiError as error:
                # Conflicts and races with other writers: look again shortly.
                log.debug("%s %s/%s: %s", type(self).__name__, *key, error)
                after = RETRY_DELAY / 10 if error.code == 409 else RETRY_DELAY
            except Exception:
                log.exception("%s failed to reconcile %s/%s", type(self).__name__, *key)
                after = RETRY_DELAY
            if after is not None:
                self.enqueue(key, after)


def owner_keys(kind: str) -> Callable[[dict[str, Any]], list[Key]]:
    """A source mapper: an owned object -> the key of its controller of the given kind."""

    def mapper(obj: dict[str, Any]) -> list[Key]:
        reference = controller_of(obj)
        if reference is None or reference.get("kind") != kind:
            return []
        return [((obj.get("metadata") or {}).get("namespace", ""), reference["name"])]

    return mapper
