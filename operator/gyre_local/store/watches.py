"""Watches: the bounded history of changes, and the streams of events it feeds."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gyre_local.jsoncopy import json_copy
from gyre_local.store.builtins import ResourceType
from gyre_local.store.errors import ApiError

WatchFilter = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Event:
    """One change recorded in the event history."""

    rv: int
    group: str
    plural: str
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


_CLOSED: tuple[str, dict[str, Any]] = ("", {})
_MAX_PENDING_EVENTS = 10_000


class Watch:
    """Async iterator of (event_type, obj): ADDED/MODIFIED/DELETED/BOOKMARK, or one ERROR
    carrying a Status (410 Expired) when the start resourceVersion is too old; close() stops it.

    Each object is the consumer's own copy, unless the watch is `read_only`: then it is the
    stored state itself, which the consumer must not change (the API server serializes it).
    """

    def __init__(
        self,
        rtype: ResourceType,
        matches: WatchFilter,
        *,
        current_rv: Callable[[], int],
        on_close: Callable[[Watch], None],
        allow_bookmarks: bool,
        timeout_seconds: float | None,
        bookmark_interval: float,
        read_only: bool = False,
    ) -> None:
        self._rtype = rtype
        self._read_only = read_only
        self._matches = matches
        self._current_rv = current_rv
        self._on_close = on_close
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._closed = False
        now = time.monotonic()
        self._deadline = None if timeout_seconds is None else now + timeout_seconds
        self._bookmark_interval = bookmark_interval
        self._next_bookmark = now + bookmark_interval if allow_bookmarks else None

    def offer(self, event: Event, *, bounded: bool = True) -> None:
        """Queue an event if it concerns this watch (selector transitions become ADDED/DELETED).

        A bounded offer ends a watch whose consumer has fallen too far behind."""
        if self._closed:
            return
        event_type = event.type
        if self._matches(event.obj):
            if event.old is not None and not self._matches(event.old):
                event_type = "ADDED"
        elif event.old is not None and self._matches(event.old):
            event_type = "DELETED"
        else:
            return
        if bounded and self._queue.qsize() >= _MAX_PENDING_EVENTS:
            # As kube-apiserver does with an unresponsive watcher: end the stream, the client
            # lists and watches again.
            self.close()
            return
        self._queue.put_nowait((event_type, event.obj))

    def fail(self, status: dict[str, Any]) -> None:
        """End the watch with an ERROR event carrying a Status."""
        self._queue.put_nowait(("ERROR", status))
        self._closed = True

    def close(self) -> None:
        """Stop the watch; pending events are still delivered, then iteration ends."""
        if not self._closed:
            self._closed = True
            self._on_close(self)
            self._queue.put_nowait(_CLOSED)

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        if self._queue.empty():
            if self._closed:
                raise StopAsyncIteration
            wakeup = min(
                (t for t in (self._deadline, self._next_bookmark) if t is not None), default=None
            )
            try:
                if wakeup is None:
                    item = await self._queue.get()
                else:
                    delay = max(0.0, wakeup - time.monotonic())
                    item = await asyncio.wait_for(self._queue.get(), delay)
            except TimeoutError:
                return self._on_timer()
        else:
            item = self._queue.get_nowait()
        if item is _CLOSED:
            raise StopAsyncIteration
        return item[0], item[1] if self._read_only else json_copy(item[1])

    def _on_timer(self) -> tuple[str, dict[str, Any]]:
        now = time.monotonic()
        if self._deadline is not None and now >= self._deadline:
            self.close()
            raise StopAsyncIteration
        self._next_bookmark = now + self._bookmark_interval
        bookmark = {
            "kind": self._rtype.kind,
            "apiVersion": self._rtype.api_version,
            "metadata": {"resourceVersion": str(self._current_rv())},
        }
        return "BOOKMARK", bookmark


class EventHistory:
    """The last `size` changes, kept for watches that resume from a resourceVersion, and the
    open watches of each resource type that every new change is offered to."""

    def __init__(self, size: int) -> None:
        self._events: deque[Event] = deque(maxlen=size)
        self._evicted_rv = 0
        self._watches: dict[tuple[str, str], set[Watch]] = {}

    def __len__(self) -> int:
        return len(self._events)

    def record(self, event: Event) -> None:
        """Keep a change (dropping the oldest when full) and offer it to the type's watches."""
        if len(self._events) == self._events.maxlen:
            self._evicted_rv = self._events[0].rv
        self._events.append(event)
        for watch in list(self._watches.get((event.group, event.plural), ())):
            watch.offer(event)

    def replay(self, watch: Watch, group: str, plural: str, since: int) -> bool:
        """Offer a watch the type's changes after `since`; False, the watch ended with
        410 Expired, when the history no longer reaches back that far."""
        if since < self._evicted_rv:
            gone = ApiError(
                410, "Expired", f"too old resource version: {since} ({self._evicted_rv})"
            )
            watch.fail(gone.status())
            return False
        for event in self._events:
            if event.rv > since and (event.group, event.plural) == (group, plural):
                watch.offer(event, bounded=False)
        return True

    def subscribe(self, group: str, plural: str, watch: Watch) -> None:
        """Offer a watch every later change of a type."""
        self._watches.setdefault((group, plural), set()).add(watch)

    def unsubscribe(self, group: str, plural: str, watch: Watch) -> None:
        """Stop offering a watch changes."""
        self._watches.get((group, plural), set()).discard(watch)

    def close_watches(self, group: str, plural: str) -> None:
        """End every watch of a type that is no longer served."""
        for watch in list(self._watches.pop((group, plural), set())):
            watch.close()
