"""A reconcile queue per kind: level-based, one reconcile per object at a time.

Triggers for an object that is queued or being reconciled are coalesced into one more run;
a reconcile may ask to run again after a delay (a refresh, a wait); failures retry with
backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

import kopf

log = logging.getLogger(__name__)
Key = tuple[str, str]
Reconcile = Callable[[Key], Awaitable[float | None]]
FIRST_RETRY = 0.5
LAST_RETRY = 60.0


class ReconcileQueue:
    """Runs `reconcile(key)` for triggered keys, first come first served, on `workers`
    concurrent workers."""

    def __init__(self, name: str, reconcile: Reconcile, workers: int = 32) -> None:
        self.name = name
        self._reconcile = reconcile
        self._workers = workers
        self._waiting: deque[Key] = deque()
        self._queued: set[Key] = set()
        self._pending = asyncio.Semaphore(0)  # one count per queued key
        self._running: set[Key] = set()
        self._again: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def trigger(self, key: Key, delay: float = 0.0) -> None:
        """Reconcile key soon, or after delay seconds (an earlier trigger wins)."""
        loop = asyncio.get_running_loop()
        if delay > 0:
            timer = self._timers.get(key)
            due = loop.time() + delay
            if timer is not None and timer.when() <= due:
                return
            if timer is not None:
                timer.cancel()
            self._timers[key] = loop.call_at(due, self._fire, key)
            return
        if key in self._running:
            self._again.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._waiting.append(key)
        self._pending.release()
        if not self._tasks:
            self._tasks = [
                loop.create_task(self._work(), name=f"{self.name} worker")
                for _ in range(self._workers)
            ]

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.trigger(key)

    async def _work(self) -> None:
        while True:
            await self._pending.acquire()
            key = self._waiting.popleft()
            self._queued.discard(key)
            self._running.add(key)
            delay = await self._run(key)
            self._running.discard(key)
            if key in self._again:
                self._again.discard(key)
                self.trigger(key)
            elif delay is not None:
                self.trigger(key, delay)

    async def _run(self, key: Key) -> float | None:
        """One reconcile; returns when to run again (None: on the next trigger)."""
        try:
            delay = await self._reconcile(key)
        except kopf.PermanentError as error:
            log.error("reconcile of %s %s/%s failed for good: %s", self.name, *key, error)
            self._failures.pop(key, None)
            return None
        except Exception as error:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(FIRST_RETRY * 2 ** (failures - 1), LAST_RETRY)
            if isinstance(error, kopf.TemporaryError) and error.delay is not None:
                delay = float(error.delay)
            log.warning(
                "reconcile of %s %s/%s failed (retry in %.1fs): %s", self.name, *key, delay, error
            )
            return delay
        self._failures.pop(key, None)
        return delay

    async def stop(self) -> None:
        """Cancel timers and workers."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
