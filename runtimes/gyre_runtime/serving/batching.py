"""Dynamic batching: concurrent requests stacked along the batch dimension, one model run.

Requests queue until the end of the current event-loop pass (everything that arrived in
one poll of the sockets), or `max_delay` seconds when that is set, or until `max_rows`
rows wait, whichever comes first. Queued requests with the same `batch_key` (the shapes
behind the leading dimension) are concatenated and run once; the run's requests are then
answered together, each from its rows of the outputs (so the server serializes a run's
outputs once). A request alone in its group runs as it is, so one connection pays nothing
for batching but one loop pass.

When a stacked run fails, each of its requests runs again alone: only the requests that
make the model fail get the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Mapping
from typing import Generic, Protocol, TypeVar

import numpy as np

from gyre_runtime.serving.model import Array


class Batchable(Protocol):
    """What the batcher needs of a request."""

    @property
    def inputs(self) -> dict[str, Array]:
        """One array per model input."""

    @property
    def rows(self) -> int:
        """The length of the leading dimension of every input."""

    @property
    def batch_key(self) -> Hashable | None:
        """Requests with equal keys stack; None runs alone."""


JobT = TypeVar("JobT", bound=Batchable)

Run = Callable[[dict[str, Array]], list[Array]]
# Called once per run: its requests, in the order of their rows in the outputs, and the
# outputs; or one request and the error its run (alone) raised.
# (the jobs of a run, its outputs or why it failed, the inputs it ran on)
Done = Callable[[list[JobT], list[Array] | Exception, Mapping[str, Array]], None]


class Batcher(Generic[JobT]):
    """Queues requests and runs them in batches on the event loop."""

    def __init__(
        self,
        run: Run,
        done: Done[JobT],
        observe_batch: Callable[[int], None],
        max_rows: int,
        max_delay: float,
    ) -> None:
        self._run = run
        self._done = done
        self._observe_batch = observe_batch
        self._max_rows = max_rows
        self._max_delay = max_delay
        self._queue: list[JobT] = []
        self._rows = 0
        self._scheduled: asyncio.Handle | None = None
        self.runs = 0

    def submit(self, job: JobT) -> None:
        """Queue a request; it runs with the batch it joins."""
        self._queue.append(job)
        self._rows += job.rows
        if self._rows >= self._max_rows:
            self.flush()
        elif self._scheduled is None:
            loop = asyncio.get_running_loop()
            if self._max_delay > 0:
                self._scheduled = loop.call_later(self._max_delay, self.flush)
            else:
                self._scheduled = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Run everything queued now."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        jobs, self._queue, self._rows = self._queue, [], 0
        if len(jobs) == 1:
            self._alone(jobs[0])
            return
        groups: dict[Hashable, list[JobT]] = {}
        for job in jobs:
            key = job.batch_key
            if key is None:
                self._alone(job)
            else:
                groups.setdefault(key, []).append(job)
        for group in groups.values():
            if len(group) == 1:
                self._alone(group[0])
            else:
                self._together(group)

    def _alone(self, job: JobT) -> None:
        self.runs += 1
        self._observe_batch(job.rows)
        try:
            outputs = self._run(job.inputs)
        # onnxruntime raises plain exceptions (Fail, InvalidArgument, ...) for a failed run.
        except Exception as error:
            self._done([job], error, job.inputs)
            return
        self._done([job], outputs, job.inputs)

    def _together(self, group: list[JobT]) -> None:
        names = list(group[0].inputs)
        feed = {name: np.concatenate([job.inputs[name] for job in group]) for name in names}
        rows = sum(job.rows for job in group)
        self.runs += 1
        self._observe_batch(rows)
        try:
            outputs = self._run(feed)
        except Exception:
            outputs = None
        if outputs is None or any(output.shape[:1] != (rows,) for output in outputs):
            for job in group:
                self._alone(job)
            return
        self._done(group, outputs, feed)
