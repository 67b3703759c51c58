"""The window of a drift check: the requests the inference servers logged, as arrays.

Logs live at `<requests>/<yyyy-mm-dd>/<pod>-<seq>.parquet` (see
gyre_runtime.serving.request_log); anything else under the prefix (other names, hidden or
temporary files) is not a log. A file is filed under the UTC date of its batch's first row,
so a folder dated D holds rows logged from D's midnight until a batch's span after the
next one: FOLDER_OVERLAP bounds that span (the server writes a batch at the latest
--request-log-max-interval, 10 s by default, after its first row).

Which files hold the window is decided from their Parquet footers first (row count and the
timestamp column's min/max statistics, a small ranged read each): the newest `requests` rows
are in the files whose newest row is at least as new as the oldest row of the fewest
newest-ending files that hold that many rows, so a window of a thousand requests reads a few
files, not a busy day's log. A file without those statistics is always read. Of the chosen
files only the timestamp and the checked features' columns are read, in parallel. Numeric
features become float64 (text that parses as a number is cast) and
categorical ones strings; a feature a file lacks is missing in that file's rows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from gyre_runtime import storage
from gyre_runtime.drift.reference import numeric_rows
from gyre_runtime.result import RuntimeFailure

TIMESTAMP = "timestamp"
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
FOLDER_OVERLAP = timedelta(minutes=5)
DATE_FOLDER = re.compile(r"\d{4}-\d{2}-\d{2}")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
READERS = min(32, 4 * (os.cpu_count() or 1))


@dataclass(frozen=True)
class WindowSize:
    """Which rows a check takes: the newest `requests`, or those of the last `seconds`."""

    requests: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class Window:
    """The logged rows of the window: numeric features as one (features, rows) float64
    matrix, categorical ones as string arrays (None when missing)."""

    files: tuple[str, ...]
    numeric: npt.NDArray[np.float64]
    categorical: Mapping[str, npt.NDArray[np.object_]]
    start: datetime
    end: datetime

    @property
    def rows(self) -> int:
        """Rows in the window."""
        return int(self.numeric.shape[1])


@dataclass(frozen=True)
class _Log:
    """One log file's rows: timestamps in microseconds, numeric features as a (features,
    rows) block, categorical ones as pyarrow string arrays; and every column it has."""

    stamps: npt.NDArray[np.int64]
    numeric: npt.NDArray[np.float64]
    categorical: Mapping[str, Any]
    columns: list[str]


@dataclass(frozen=True)
class _Read:
    """The log files read so far, in order, and every column they had."""

    files: list[str]
    logs: list[_Log]
    columns: dict[str, None]  # an ordered set

    @property
    def rows(self) -> int:
        return sum(log.stamps.size for log in self.logs)

    def stamps(self) -> npt.NDArray[np.int64]:
        """Every row's timestamp, file after file."""
        return np.concatenate([log.stamps for log in self.logs] or [np.empty(0, np.int64)])


def read_window(
    requests_uri: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    size: WindowSize,
    now: datetime,
) -> Window:
    """Read the window's rows of the given features from the logs under `requests_uri`.

    No row in the window fails with EmptyWindow, a checked feature no log file has with
    FeatureMissing, an unreadable file or text in a numeric feature with InvalidData.
    """
    folders = _date_folders(requests_uri)
    if size.requests is not None:
        chosen = _newest_files(folders, size.requests)
    else:
        assert size.seconds is not None
        chosen = _files_since(folders, now - timedelta(seconds=size.seconds))
    read = _read_files(chosen, numeric, categorical)
    stamps = read.stamps()
    rows = _window_rows(stamps, size, now)
    if rows.size == 0:
        raise RuntimeFailure("EmptyWindow", _empty_message(requests_uri, folders, read, size))
    missing = [name for name in (*numeric, *categorical) if name not in read.columns]
    if missing:
        raise RuntimeFailure(
            "FeatureMissing",
            f"feature {', '.join(map(repr, missing))} of the reference has no column in the "
            f"{len(read.files)} request log file(s) read under {requests_uri} "
            f"(columns: {', '.join(read.columns)})",
            missing=missing,
        )
    positions = pa.array(rows)
    window_stamps = stamps[rows]
    return Window(
        files=tuple(read.files),
        numeric=_gather([log.numeric for log in read.logs], rows, len(numeric)),
        categorical={
            name: pa.chunked_array([log.categorical[name] for log in read.logs], pa.string())
            .take(positions)
            .to_numpy()
            for name in categorical
        },
        start=_moment(int(window_stamps.min())),
        end=_moment(int(window_stamps.max())),
    )


def _date_folders(requests_uri: str) -> dict[datetime, list[str]]:
    """The log files under the prefix by date folder, newest folder first."""
    try:
        listed = storage.list_files(requests_uri) if storage.is_directory(requests_uri) else []
    except storage.StorageError as error:
        raise RuntimeFailure("InvalidData", f"cannot list the request logs: {error}") from error
    base = requests_uri.rstrip("/") + "/"
    folders: dict[datetime, list[str]] = {}
    for uri in listed:
        parts = uri[len(base) :].split("/")
        if len(parts) == 2 and _is_log_name(parts[1]) and (day := _folder_date(parts[0])):
            folders.setdefault(day, []).append(uri)
    return dict(sorted(folders.items(), reverse=True))


def _is_log_name(name: str) -> bool:
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def _folder_date(name: str) -> datetime | None:
    if not DATE_FOLDER.fullmatch(name):
        return None
    try:
        return datetime.strptime(name, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def _holds_rows_after(day: datetime, moment: datetime) -> bool:
    """Whether a folder dated `day` can hold rows logged at or after `moment`."""
    return day + timedelta(days=1) + FOLDER_OVERLAP > moment


@dataclass(frozen=True)
class _Span:
    """A log file's row count and the first and last timestamps its footer records (in
    microseconds; None when the footer has no statistics for them)."""

    uri: str
    rows: int
    first: int | None
    last: int | None


def _spans(files: Sequence[str]) -> list[_Span]:
    """The footers of log files, read in parallel."""
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="drift-footer") as pool:
        return list(pool.map(_span, files))


def _span(uri: str) -> _Span:
    try:
        with storage.open_input(uri) as stream:
            metadata = pq.read_metadata(stream)
    except storage.StorageError as error:
        raise RuntimeFailure("InvalidData", f"cannot read a request log: {error}") from error
    except (pa.ArrowException, OSError) as error:
        raise RuntimeFailure("InvalidData", f"{uri}: not a request log: {error}") from error
    column = metadata.schema.to_arrow_schema().get_field_index(TIMESTAMP)
    firsts: list[int] = []
    lasts: list[int] = []
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(column).statistics if column >= 0 else None
        if statistics is None or not statistics.has_min_max:
            return _Span(uri, metadata.num_rows, None, None)
        firsts.append(_microseconds(statistics.min))
        lasts.append(_microseconds(statistics.max))
    return _Span(uri, metadata.num_rows, min(firsts, default=None), max(lasts, default=None))


def _microseconds(value: Any) -> int:
    """A timestamp statistic (a datetime for a timestamp column) in microseconds."""
    if not isinstance(value, datetime):
        raise RuntimeFailure("InvalidData", f"a request log's {TIMESTAMP} is not a timestamp")
    return _to_microseconds(value if value.tzinfo else value.replace(tzinfo=UTC))


def _oldest_needed(spans: Sequence[_Span], requests: int) -> int | None:
    """A time no row of the newest `requests` is older than: the oldest first row of the
    fewest newest-ending files holding that many rows (None: the spans cannot tell)."""
    if any(span.last is None for span in spans):
        return None
    taken = 0
    oldest: int | None = None
    for span in sorted(spans, key=lambda span: span.last or 0, reverse=True):
        taken += span.rows
        oldest = span.first if oldest is None else min(oldest, span.first or 0)
        if taken >= requests:
            return oldest
    return None


def _newest_files(folders: Mapping[datetime, list[str]], requests: int) -> list[str]:
    """The files that can hold the newest `requests` rows, from their footers, reading
    date folders newest first only while an older one can still hold some of them."""
    spans: list[_Span] = []
    for day, files in folders.items():
        oldest = _oldest_needed(spans, requests)
        if oldest is not None and not _holds_rows_after(day, _moment(oldest)):
            break
        spans.extend(_spans(files))
    oldest = _oldest_needed(spans, requests)
    return [s.uri for s in spans if oldest is None or s.last is None or s.last >= oldest]


def _files_since(folders: Mapping[datetime, list[str]], cutoff: datetime) -> list[str]:
    """The files that can hold rows logged at or after `cutoff`, from their footers."""
    files = [
        uri for day, found in folders.items() if _holds_rows_after(day, cutoff) for uri in found
    ]
    moment = _to_microseconds(cutoff)
    return [s.uri for s in _spans(files) if s.last is None or s.last >= moment]


def _read_files(files: Sequence[str], numeric: Sequence[str], categorical: Sequence[str]) -> _Read:
    """The chosen log files' timestamps and features, read in parallel."""
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="drift-read") as pool:
        logs = list(pool.map(lambda uri: _read_file(uri, numeric, categorical), files))
    columns: dict[str, None] = {}
    for log in logs:
        columns.update(dict.fromkeys(log.columns))
    return _Read(list(files), logs, columns)


def _read_file(uri: str, numeric: Sequence[str], categorical: Sequence[str]) -> _Log:
    """A log file's timestamps and features (missing values for the features it lacks)."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(storage.read_bytes(uri)))
        columns = list(parquet.schema_arrow.names)
        if TIMESTAMP not in columns:
            raise RuntimeFailure("InvalidData", f"{uri}: a request log without a timestamp column")
        wanted = [name for name in (*numeric, *categorical) if name in columns]
        table = parquet.read(columns=[TIMESTAMP, *wanted])
    except storage.StorageError as error:
        raise RuntimeFailure("InvalidData", f"cannot read a request log: {error}") from error
    except (pa.ArrowException, OSError) as error:
        raise RuntimeFailure("InvalidData", f"{uri}: not a request log: {error}") from error
    rows = table.num_rows
    stamps = _cast(uri, TIMESTAMP, table.column(TIMESTAMP), TIMESTAMP_TYPE)
    if stamps.null_count:
        raise RuntimeFailure("InvalidData", f"{uri}: {stamps.null_count} rows without a timestamp")
    return _Log(
        stamps=stamps.to_numpy().view(np.int64),
        numeric=_numeric_block(uri, table, numeric),
        categorical={
            name: _cast(uri, name, table.column(name), pa.string())
            if name in table.column_names
            else pa.nulls(rows, pa.string())
            for name in categorical
        },
        columns=columns,
    )


def _numeric_block(uri: str, table: Any, numeric: Sequence[str]) -> npt.NDArray[np.float64]:
    """The numeric features of a log file as (features, rows), NaN where it lacks one."""
    present = [position for position, name in enumerate(numeric) if name in table.column_names]
    try:
        values = numeric_rows(table, [numeric[position] for position in present])
    except RuntimeFailure as failure:
        raise RuntimeFailure(
            failure.reason, f"{uri}: {failure.message}", **failure.details, uri=uri
        ) from failure
    if len(present) == len(numeric):
        return values
    block = np.full((len(numeric), table.num_rows), np.nan)
    block[present] = values
    return block


def _cast(uri: str, name: str, column: Any, kind: Any) -> Any:
    if column.type == kind:
        return column
    try:
        return pc.cast(column, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise RuntimeFailure(
            "InvalidData", f"{uri}: column {name!r} is not {kind}: {error}", column=name, uri=uri
        ) from error


def _window_rows(
    stamps: npt.NDArray[np.int64], size: WindowSize, now: datetime
) -> npt.NDArray[np.int64]:
    """Positions of the window's rows, ascending: the newest `requests` (equal timestamps
    kept in read order, so the choice is deterministic), or those logged at or after
    now - `seconds`."""
    if size.requests is not None:
        rows: npt.NDArray[np.int64] = np.argsort(stamps, kind="stable")[-size.requests :]
        return np.sort(rows)
    assert size.seconds is not None
    cutoff = _to_microseconds(now - timedelta(seconds=size.seconds))
    return np.flatnonzero(stamps >= cutoff)


def _gather(
    blocks: Sequence[npt.NDArray[np.float64]], rows: npt.NDArray[np.int64], features: int
) -> npt.NDArray[np.float64]:
    """Columns of the blocks laid end to end, at ascending positions, as one C-contiguous
    (features, len(rows)) matrix, filled block by block."""
    matrix = np.empty((features, rows.size), dtype=np.float64)
    ends = np.cumsum([block.shape[1] for block in blocks])
    cuts = np.searchsorted(rows, ends)
    start = taken = 0
    for block, end, cut in zip(blocks, ends.tolist(), cuts.tolist(), strict=True):
        if cut - taken == block.shape[1]:
            matrix[:, taken:cut] = block
        elif cut > taken:
            matrix[:, taken:cut] = block[:, rows[taken:cut] - start]
        start, taken = end, cut
    return matrix


def _to_microseconds(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _moment(microseconds: int) -> datetime:
    return EPOCH + timedelta(microseconds=microseconds)


def _empty_message(
    requests_uri: str, folders: Mapping[datetime, list[str]], read: _Read, size: WindowSize
) -> str:
    if not folders:
        return f"no request log files under {requests_uri} (<yyyy-mm-dd>/<pod>-<seq>.parquet)"
    window = (
        f"the newest {size.requests} requests"
        if size.requests is not None
        else f"the last {size.seconds:g} s"
    )
    files = sum(len(files) for files in folders.values())
    return (
        f"no logged request in {window} under {requests_uri} "
        f"({len(read.files)} of its {files} log files read)"
    )
