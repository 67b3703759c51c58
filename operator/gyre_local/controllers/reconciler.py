"""The controller pattern of kube-controller-manager, in process: level-based reconciles keyed by
namespace/name, fed by watches of the Store, resynced on start, idempotent."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from gyre_local.controllers.informer import RETRY_DELAY, EventHandler, watch_forever
from gyre_local.controllers.objects import controller_of
from gyre_local.store.store import ApiError, Store

log = logging.getLogger(__name__)

Key = tuple[str, str]


def key_of(obj: dict[str, Any]) -> Key:
    """The namespace/name key of an object."""
    metadata = obj.get("metadata") or {}
    return metadata.get("namespace", ""), metadata["name"]


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
        """(group, plural, object -> primary keys) for each watched kind besides the primary.

        A mapper is given the stored object itself: it must only read it."""
        return ()

    def find(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """An object ("" for no namespace), or None when there is none."""
        return find(self.store, group, plural, namespace, name)

    def primary(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The primary object of a key, or None when it is gone."""
        group, plural = self.resource
        return self.find(group, plural, namespace, name)

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
        # The handlers only map objects to keys: they may read the stored states uncopied.
        watches = [
            asyncio.create_task(
                watch_forever(
                    self.store,
                    group,
                    plural,
                    lambda _t, obj: self.enqueue(key_of(obj)),
                    read_only=True,
                )
            )
        ]
        for source_group, source_plural, mapper in self.sources():
            watches.append(
                asyncio.create_task(
                    watch_forever(
                        self.store,
                        source_group,
                        source_plural,
                        self._mapped(mapper),
                        read_only=True,
                    )
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


def find(
    store: Store, group: str, plural: str, namespace: str | None, name: str
) -> dict[str, Any] | None:
    """An object ("" or None for no namespace), or None when there is none."""
    try:
        return store.get(group, plural, namespace or None, name)
    except ApiError as error:
        if error.code != 404:
            raise
        return None


def owner_keys(kind: str) -> Callable[[dict[str, Any]], list[Key]]:
    """A source mapper: an owned object -> the key of its controller of the given kind."""

    def mapper(obj: dict[str, Any]) -> list[Key]:
        reference = controller_of(obj)
        if reference is None or reference.get("kind") != kind:
            return []
        return [((obj.get("metadata") or {}).get("namespace", ""), reference["name"])]

    return mapper
