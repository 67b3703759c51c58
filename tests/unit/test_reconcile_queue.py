"""The reconcile queue: one run per key at a time, coalescing, delays, retries."""

from __future__ import annotations

import asyncio

import kopf
import pytest

from gyre_operator.controllers.queue import ReconcileQueue

Key = tuple[str, str]


class Recorder:
    """A reconcile that records its calls and can be held open, fail or ask for a delay."""

    def __init__(self) -> None:
        self.calls: list[Key] = []
        self.running = 0
        self.most_running = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.failures: dict[Key, list[Exception]] = {}
        self.delays: dict[Key, float] = {}

    async def __call__(self, key: Key) -> float | None:
        self.calls.append(key)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            if self.failures.get(key):
                raise self.failures[key].pop(0)
            return self.delays.pop(key, None)
        finally:
            self.running -= 1


async def settle(seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)


async def test_triggers_while_running_coalesce_into_one_more_run() -> None:
    record = Recorder()
    queue = ReconcileQueue("Test", record, workers=4)
    record.gate.clear()
    queue.trigger(("ns", "a"))
    await settle()
    for _ in range(5):
        queue.trigger(("ns", "a"))
    record.gate.set()
    await settle()
    assert record.calls == [("ns", "a"), ("ns", "a")]
    assert record.most_running == 1
    await queue.stop()


async def test_workers_bound_concurrency_and_queued_duplicates_run_once() -> None:
    record = Recorder()
    queue = ReconcileQueue("Test", record, workers=2)
    record.gate.clear()
    for name in ("a", "b", "c", "c", "d"):
        queue.trigger(("ns", name))
    await settle()
    assert record.running == 2
    record.gate.set()
    await settle()
    assert sorted(record.calls) == [("ns", "a"), ("ns", "b"), ("ns", "c"), ("ns", "d")]
    await queue.stop()


async def test_a_requested_delay_runs_again_and_the_earlier_timer_wins() -> None:
    record = Recorder()
    queue = ReconcileQueue("Test", record)
    record.delays[("ns", "a")] = 0.1
    queue.trigger(("ns", "a"))
    queue.trigger(("ns", "b"), delay=5.0)
    queue.trigger(("ns", "b"), delay=0.05)
    await settle(0.3)
    assert record.calls.count(("ns", "a")) == 2
    assert record.calls.count(("ns", "b")) == 1
    await queue.stop()


async def test_failures_retry_with_backoff_and_permanent_errors_do_not() -> None:
    record = Recorder()
    queue = ReconcileQueue("Test", record)
    record.failures[("ns", "flaky")] = [RuntimeError("boom"), kopf.TemporaryError("x", delay=0.05)]
    record.failures[("ns", "broken")] = [kopf.PermanentError("no")]
    queue.trigger(("ns", "flaky"))
    queue.trigger(("ns", "broken"))
    await settle(0.8)  # the first retry waits 0.5 s, the second the error's own 0.05 s
    assert record.calls.count(("ns", "flaky")) == 3
    assert record.calls.count(("ns", "broken")) == 1
    await queue.stop()


@pytest.mark.parametrize("workers", [1, 8])
async def test_stop_cancels_workers_and_timers(workers: int) -> None:
    record = Recorder()
    queue = ReconcileQueue("Test", record, workers=workers)
    queue.trigger(("ns", "later"), delay=0.05)
    queue.trigger(("ns", "now"))
    await settle(0.01)
    await queue.stop()
    await settle(0.1)
    assert record.calls == [("ns", "now")]
