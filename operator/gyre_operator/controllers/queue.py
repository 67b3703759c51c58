"""A reconcile queue per kind: level-based, one reconcile per object at a time.

Triggers for an object that is being reconciled are coalesced into one more run; a reconcile
may ask to run again after a delay (a refresh, a wait); failures retry with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import kopf

log = logging.getLogger(__name__)
Key = tuple[str, str]
Reconcile = Callable[[Key], Awaitable[float | None]]
FIRST_RETRY = 0.5
LAST_RETRY = 60.0


class ReconcileQueue:
    """Runs `reconcile(key)` for triggered keys, at most `workers` at once."""

    def __init__(self, name: str, reconcile: Reconcile, workers: int = 32) -> None:
        self.name = name
        self._reconcile = reconcile
        self._slots = asyncio.Semaphore(workers)
        self._running: set[Key] = set()
        self._again: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def trigger(self, key: Key, delay: float = 0.0) -> None:
        """Reconcile key now, or after delay seconds (an earlier trigger wins)."""
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
        self._running.add(key)
        task = loop.create_task(self._run(key), name=f"reconcile {self.name} {key[0]}/{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.trigger(key)

    async def _run(self, key: Key) -> None:
        delay: float | None = None
        try:
            async with self._slots:
                delay = await self._reconcile(key)
            self._failures.pop(key, None)
        except kopf.PermanentError as error:
            log.error("reconcile of %s %s/%s failed for good: %s", self.name, *key, error)
            self._failures.pop(key, None)
        except Exception as error:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(FIRST_RETRY * 2 ** (failures - 1), LAST_RETRY)
            if isinstance(error, kopf.TemporaryError) and error.delay is not None:
                delay = float(error.delay)
            log.warning(
                "reconcile of %s %s/%s failed (retry in %.1fs): %s", self.name, *key, delay, error
            )
        finally:
            self._running.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.trigger(key)
        elif delay is not None:
            self.trigger(key, delay)

    async def stop(self) -> None:
        """Cancel timers and running reconciles."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
