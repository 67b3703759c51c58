"""A sample of the inference server's requests, written to the artifact store as Parquet.

Drift checks compare these production inputs (and the model's outputs) with the training
data. Files go to `<root>/requests/<service>/<yyyy-mm-dd>/<pod>-<seq>.parquet`: the UTC date
of the batch's first row; `seq`, zero-padded, grows in each process and, for each date
folder the process writes to, starts after the highest one this pod already has there, so a
restarted pod with the same name never overwrites a batch written before.

Columns: `request_id` (string), `timestamp` (timestamp[us, UTC]), `model_version` (string),
then the inputs and the outputs, with the arrays' own dtypes (strings as string):
- inputs: a 2-D input `[rows, F]` whose width is the number of `features` (the first such
  input: the model's feature matrix) gives one column per feature name; any other input
  gives `<input>` when it holds one value per row (1-D or `[rows, 1]`), else `<input>_<i>`;
- outputs: `output.<name>` for one value per row, else `output.<name>_<j>`.
Every row of a request carries its id, time and version. Requests whose inputs or outputs
change shape or dtype within a batch share one file when pyarrow can unify the schemas
(missing columns become nulls, numbers widen); otherwise the batch spans several files.

Threading: record() runs on the event loop and only keeps references to the request's
arrays, so the server must not reuse or mutate them afterwards (it hands each request
fresh arrays; copying them here would cost more than the rest of record()). A full batch
(max_rows rows) or, once start() gave a loop, at the latest one max_interval after its first
row, moves to one writer thread, which builds the Parquet file in memory and writes it
atomically through `storage`; one thread keeps the files in order and the loop never waits
for I/O.

Failures never reach the request path: a write is retried with backoff, then reported on
stderr and counted in `write_errors`; later batches are still written. If the writer falls
`max_pending_batches` behind (an unreachable store), new batches are dropped and counted in
`rows_dropped`: a queue growing without bound would eventually take the pod's memory, and
serving matters more than its log. At most max_pending_batches + 2 batches of max_rows rows
are held: the queued ones, the one being written and the one filling.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import queue
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from gyre_runtime import storage

Array = npt.NDArray[Any]
# snappy: half zstd's CPU for files a few percent larger; the writer shares the server's core.
COMPRESSION = "snappy"
SEQ_DIGITS = 6
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


class _Run(NamedTuple):
    """The sampled requests of one model run, their rows stacked in request order, the
    arrays held by reference until the writer takes them."""

    request_ids: list[str]
    counts: Array  # rows of each request
    model_version: str
    timestamp: float
    rows: int
    inputs: Mapping[str, Array]
    outputs: Mapping[str, Array]


class RequestLog:
    """Samples answered requests and writes them as Parquet batches in the background.

    Counters for the server's metrics, plain integers: `rows_logged` (rows in files
    written), `files_written`, `write_errors` (files given up after the retries) and
    `rows_dropped` (sampled rows not logged: the writer was too far behind, or a request's
    arrays disagreed on the number of rows).
    """

    def __init__(
        self,
        root: str,
        service: str,
        pod: str,
        *,
        features: Sequence[str] | None = None,
        max_rows: int = 1000,
        max_interval: float = 10.0,
        sample_rate: float = 1.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        max_pending_batches: int = 20,
        retry_delays: Sequence[float] = (0.5, 2.0, 8.0),
        close_timeout: float = 20.0,
    ) -> None:
        """Log under `<root>/requests/<service>/` as `pod`; the writer thread starts now.

        `clock` gives today's date, whose folder the writer lists at once for this pod's
        files; `retry_delays` are the waits before each retry of a failed write;
        `close_timeout` bounds how long close() waits for the writer.
        """
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, not {max_rows}")
        if max_interval <= 0:
            raise ValueError(f"max_interval must be positive, not {max_interval}")
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, not {sample_rate}")
        if max_pending_batches < 1:
            raise ValueError(f"max_pending_batches must be at least 1, not {max_pending_batches}")
        self.rows_logged = 0
        self.files_written = 0
        self.write_errors = 0
        self.rows_dropped = 0
        self._service_root = storage.join(root, "requests", service)
        self._service = service
        self._pod = pod
        self._features = tuple(features) if features is not None else None
        self._max_rows = max_rows
        self._max_interval = max_interval
        self._sample_rate = sample_rate
        self._coin = random.Random(seed)
        self._max_pending = max_pending_batches
        self._retry_delays = tuple(retry_delays)
        self._close_timeout = close_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._buffer: list[_Run] = []
        self._buffered_rows = 0
        self._closed = False
        self._dropping = False
        self._queue: queue.SimpleQueue[list[_Run] | None] = queue.SimpleQueue()
        self._abandon = threading.Event()
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        # Owned by the writer thread.
        self._seq = 0
        self._listed_dates: set[str] = set()
        # A daemon: a writer stuck on an unreachable store must not hold the process at exit.
        threading.Thread(
            target=self._run_writer,
            args=(_utc_date(clock()),),
            name=f"request-log-{service}",
            daemon=True,
        ).start()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush on time on this loop: a batch waits at most max_interval after its first row."""
        self._loop = loop
        if self._buffer:
            self._arm_timer()

    def record(
        self,
        request_id: str,
        model_version: str,
        inputs: Mapping[str, Array],
        outputs: Mapping[str, Array],
        timestamp: float,
    ) -> None:
        """Sample one answered request (on the event loop): keep references, never block.

        Arrays carry the request's rows along axis 0; `timestamp` is in seconds since the
        epoch. The arrays must not be changed afterwards: they are written later.
        """
        if not self.sampled():
            return
        rows = _row_counts(inputs, outputs)
        if len(rows) != 1:
            self.rows_dropped += max(rows, default=0)
            return
        counts = np.array([rows.pop()], dtype=np.int64)
        self.record_run([request_id], counts, model_version, inputs, outputs, timestamp)

    def sampled(self) -> bool:
        """Whether to log the next run, drawn at the sample rate. A whole run is logged or
        not (its requests were batched together, so they are whole requests either way);
        cheap, so the server asks before it prepares a run for record_run()."""
        return not self._closed and (
            self._sample_rate >= 1.0 or self._coin.random() < self._sample_rate
        )

    def record_run(
        self,
        request_ids: list[str],
        counts: Array,
        model_version: str,
        inputs: Mapping[str, Array],
        outputs: Mapping[str, Array],
        timestamp: float,
    ) -> None:
        """Log the requests of one model run that sampled() chose (on the event loop): one
        call per run, not per request, keeps the loop's share small. The arrays hold the
        run's rows, request after request (`counts[i]` rows for `request_ids[i]`). The
        arrays must not be changed afterwards: they are written later."""
        if self._closed:
            return
        rows = int(counts.sum())
        if _row_counts(inputs, outputs) != {rows} or len(request_ids) != len(counts):
            self.rows_dropped += rows
            return
        if not rows:
            return
        run = _Run(request_ids, counts, model_version, timestamp, rows, inputs, outputs)
        self._buffer.append(run)
        self._buffered_rows += rows
        if self._buffered_rows >= self._max_rows:
            self._flush()
        elif self._timer is None and self._loop is not None:
            self._arm_timer()

    async def close(self) -> None:
        """Flush the buffer and wait (at most close_timeout) until every batch is written.

        What could not be written is reported on stderr; record() ignores later requests and
        later calls return at once.
        """
        if self._closed:
            return
        self._closed = True
        self._flush()
        self._queue.put(None)
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._done), self._close_timeout)
        except TimeoutError:
            self._abandon.set()
            # The stop marker is one of the queued items.
            pending = max(self._queue.qsize() - 1, 0)
            _report(
                f"{self._service}: gave up waiting for the writer after {self._close_timeout}s;"
                f" the batch being written may be lost and {pending} queued batch(es) are"
            )
        if self.write_errors or self.rows_dropped:
            _report(
                f"{self._service}: {self.write_errors} file(s) could not be written and"
                f" {self.rows_dropped} sampled rows were dropped; {self.files_written} file(s)"
                f" with {self.rows_logged} rows were written"
            )

    def _arm_timer(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(self._max_interval, self._flush)

    def _flush(self) -> None:
        """Hand the buffered requests to the writer, or drop them if it is too far behind."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer:
            return
        batch, rows = self._buffer, self._buffered_rows
        self._buffer, self._buffered_rows = [], 0
        if self._queue.qsize() >= self._max_pending:
            if not self._dropping:
                _report(
                    f"{self._service}: the writer is {self._max_pending} batches behind;"
                    " dropping sampled requests until it catches up"
                )
            self._dropping = True
            self.rows_dropped += rows
            return
        if self._dropping:
            _report(
                f"{self._service}: the writer caught up; {self.rows_dropped} rows dropped so far"
            )
            self._dropping = False
        self._queue.put(batch)

    def _run_writer(self, today: str) -> None:
        """The writer thread: write batches in order until the stop marker or abandon."""
        self._done.set_running_or_notify_cancel()
        try:
            # A failed listing is retried before this folder's first write.
            with contextlib.suppress(storage.StorageError):
                self._continue_after_existing(today)
            while (batch := self._queue.get()) is not None and not self._abandon.is_set():
                rows = sum(request.rows for request in batch)
                # Whatever goes wrong with one batch must not stop the thread.
                try:
                    self._write_batch(batch)
                except Exception as error:
                    self._fail(rows, f"{type(error).__name__}: {error}")
        finally:
            self._done.set_result(None)

    def _write_batch(self, batch: list[_Run]) -> None:
        date = _utc_date(batch[0].timestamp)
        for table in _batch_tables(batch, self._features):
            self._write_file(date, table.num_rows, _parquet_bytes(table))

    def _write_file(self, date: str, rows: int, data: bytes) -> None:
        """Write one file, retrying with backoff; count it as written or as an error."""
        folder = storage.join(self._service_root, date)
        error: storage.StorageError | None = None
        for delay in (0.0, *self._retry_delays):
            if self._abandon.wait(delay):
                break
            try:
                self._continue_after_existing(date)
                uri = storage.join(folder, f"{self._pod}-{self._seq:0{SEQ_DIGITS}d}.parquet")
                storage.write_bytes(uri, data)
            except storage.StorageError as failure:
                error = failure
                continue
            self._seq += 1
            self.files_written += 1
            self.rows_logged += rows
            return
        # A write that timed out may still have landed: its name is never used again.
        self._seq += 1
        self._fail(rows, str(error) if error else "abandoned at close")

    def _continue_after_existing(self, date: str) -> None:
        """Move seq past this pod's files in the date's folder (listed once per date)."""
        if date in self._listed_dates:
            return
        folder = storage.join(self._service_root, date)
        if storage.is_directory(folder):
            pattern = re.compile(re.escape(self._pod) + r"-(\d+)\.parquet")
            names = (uri.rsplit("/", 1)[-1] for uri in storage.list_files(folder))
            found = [int(match[1]) for name in names if (match := pattern.fullmatch(name))]
            self._seq = max(self._seq, max(found, default=-1) + 1)
        self._listed_dates.add(date)

    def _fail(self, rows: int, reason: str) -> None:
        self.write_errors += 1
        _report(f"{self._service}: {rows} rows not written: {reason}")


def _report(message: str) -> None:
    print(f"request log: {message}", file=sys.stderr, flush=True)


def _row_counts(inputs: Mapping[str, Array], outputs: Mapping[str, Array]) -> set[int]:
    """The lengths of axis 0 of a request's arrays: one value for a well-formed request."""
    return {
        array.shape[0] if array.ndim else 1
        for array in itertools.chain(inputs.values(), outputs.values())
    }


def _utc_date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")


def _batch_tables(batch: list[_Run], features: tuple[str, ...] | None) -> list[Any]:
    """The batch as tables: consecutive runs share one while their schemas unify."""
    tables: list[Any] = []
    for _, group in itertools.groupby(batch, key=_signature):
        table = _runs_table(list(group), features)
        if tables:
            try:
                tables[-1] = pa.concat_tables([tables[-1], table], promote_options="permissive")
                continue
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                pass
        tables.append(table)
    return tables


def _signature(run: _Run) -> Hashable:
    """What decides a run's columns: names, dtypes and per-row shapes of its arrays."""
    return tuple(
        (kind, name, array.dtype.str, array.shape[1:])
        for kind, arrays in (("input", run.inputs), ("output", run.outputs))
        for name, array in arrays.items()
    )


def _runs_table(runs: list[_Run], features: tuple[str, ...] | None) -> Any:
    """A table of runs with the same signature, rows in request order."""
    counts = np.concatenate([run.counts for run in runs])
    ids = [request_id for run in runs for request_id in run.request_ids]
    run_rows = np.fromiter((run.rows for run in runs), dtype=np.int64, count=len(runs))
    microseconds = np.rint(np.array([run.timestamp for run in runs]) * 1e6).astype(np.int64)
    names = ["request_id", "timestamp", "model_version"]
    columns = [
        _repeated_strings(ids, counts),
        pa.array(np.repeat(microseconds, run_rows), TIMESTAMP_TYPE),
        _repeated_strings([run.model_version for run in runs], run_rows),
    ]
    first = runs[0]
    feature_input = _feature_input(first.inputs, features)
    for name in first.inputs:
        matrix = np.concatenate([run.inputs[name].reshape(run.rows, -1) for run in runs])
        if name == feature_input and features is not None:
            names += features
        else:
            names += _column_names(name, matrix.shape[1])
        columns += _columns(matrix)
    for name in first.outputs:
        matrix = np.concatenate([run.outputs[name].reshape(run.rows, -1) for run in runs])
        names += _column_names(f"output.{name}", matrix.shape[1])
        columns += _columns(matrix)
    return pa.Table.from_arrays(columns, names=names)


def _repeated_strings(values: list[str], counts: Array) -> Any:
    return pa.array(np.repeat(np.array(values, dtype=object), counts), pa.string())


def _feature_input(inputs: Mapping[str, Array], features: tuple[str, ...] | None) -> str | None:
    """The first 2-D input as wide as the feature list: the columns the features name."""
    if features is None:
        return None
    for name, array in inputs.items():
        if array.ndim == 2 and array.shape[1] == len(features):
            return name
    return None


def _column_names(name: str, width: int) -> list[str]:
    return [name] if width == 1 else [f"{name}_{i}" for i in range(width)]


def _columns(matrix: Array) -> Iterator[Any]:
    # Transposed once so that every column is contiguous and pyarrow takes it without a copy.
    return (_arrow(column) for column in np.ascontiguousarray(matrix.T))


def _arrow(values: Array) -> Any:
    array = pa.array(values)
    if pa.types.is_binary(array.type):
        # Bytes that are not UTF-8 text stay binary.
        with contextlib.suppress(pa.ArrowInvalid):
            return array.cast(pa.string())
    return array


def _parquet_bytes(table: Any) -> bytes:
    sink = pa.BufferOutputStream()
    # Dictionary encoding only where values repeat: on float features it costs twice the
    # rest of the encoding and makes the file larger.
    pq.write_table(table, sink, compression=COMPRESSION, use_dictionary=["model_version"])
    return bytes(sink.getvalue().to_pybytes())
