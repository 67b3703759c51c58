"""The request log: Parquet batches of sampled requests, on local disk and on S3 (moto)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gyre_runtime import storage
from gyre_runtime.serving import request_log
from gyre_runtime.serving.request_log import RequestLog

NOON = datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()
DAY = "2024-05-01"
FEATURES = ["alcohol", "malic_acid", "ash"]
FAST_RETRIES = (0.01, 0.01)


def fixed_clock() -> float:
    return NOON


def make_log(root: str, **options: Any) -> RequestLog:
    options.setdefault("clock", fixed_clock)
    options.setdefault("retry_delays", FAST_RETRIES)
    return RequestLog(root, "wine", "wine-predictor-0", **options)


def tabular(rows: int, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A tabular model's request: a float32 feature matrix; label and probabilities out."""
    generator = np.random.default_rng(seed)
    inputs = {"input": generator.random((rows, len(FEATURES)), dtype=np.float32)}
    outputs = {
        "label": generator.integers(0, 3, rows),
        "probabilities": generator.random((rows, 3), dtype=np.float32),
    }
    return inputs, outputs


def read(uri: str) -> pa.Table:
    return pq.read_table(pa.BufferReader(storage.read_bytes(uri)))


def logged(root: str) -> list[str]:
    folder = storage.join(root, "requests", "wine")
    return storage.list_files(folder) if storage.is_directory(folder) else []


async def wait_for_files(root: str, count: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(files := logged(root)) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return files


@pytest.fixture
def root(tmp_path: Path) -> str:
    return (tmp_path / "store").as_uri()


async def test_a_batch_has_the_layout_schema_and_values(root: str) -> None:
    log = make_log(root, features=FEATURES)
    sent = [tabular(rows, seed=rows) for rows in (1, 2, 3)]
    for number, (inputs, outputs) in enumerate(sent):
        log.record(f"r{number}", "v3", inputs, outputs, NOON + number)
    await log.close()

    assert logged(root) == [f"{root}/requests/wine/{DAY}/wine-predictor-0-000000.parquet"]
    table = read(logged(root)[0])
    assert table.schema.names == [
        "request_id",
        "timestamp",
        "model_version",
        *FEATURES,
        "output.label",
        "output.probabilities_0",
        "output.probabilities_1",
        "output.probabilities_2",
    ]
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("request_id").type == pa.string()
    assert table.schema.field("model_version").type == pa.string()
    assert table.schema.field("alcohol").type == pa.float32()
    assert table.schema.field("output.label").type == pa.int64()
    assert table.schema.field("output.probabilities_0").type == pa.float32()
    assert table.column("request_id").to_pylist() == ["r0", "r1", "r1", "r2", "r2", "r2"]
    assert table.column("model_version").to_pylist() == ["v3"] * 6
    assert [t.timestamp() for t in table.column("timestamp").to_pylist()] == [
        NOON,
        NOON + 1,
        NOON + 1,
        NOON + 2,
        NOON + 2,
        NOON + 2,
    ]
    features = np.concatenate([inputs["input"] for inputs, _ in sent])
    probabilities = np.concatenate([outputs["probabilities"] for _, outputs in sent])
    for i, name in enumerate(FEATURES):
        np.testing.assert_array_equal(table.column(name).to_numpy(), features[:, i])
    for j in range(3):
        np.testing.assert_array_equal(
            table.column(f"output.probabilities_{j}").to_numpy(), probabilities[:, j]
        )
    labels = np.concatenate([outputs["label"] for _, outputs in sent])
    np.testing.assert_array_equal(table.column("output.label").to_numpy(), labels)
    assert (log.rows_logged, log.files_written, log.write_errors, log.rows_dropped) == (6, 1, 0, 0)


async def test_columns_without_feature_names_one_value_inputs_and_strings(root: str) -> None:
    log = make_log(root)
    inputs = {
        "input": np.arange(6, dtype=np.float64).reshape(2, 3),
        "weight": np.array([[0.5], [1.5]]),
        "country": np.array(["fr", "ch"]),
        "note": np.array([b"ok", b"late"], dtype=object),
    }
    outputs = {"score": np.array([[0.25], [0.75]], dtype=np.float32)}
    log.record("r", "v1", inputs, outputs, NOON)
    await log.close()

    table = read(logged(root)[0])
    assert table.schema.names[3:] == [
        "input_0",
        "input_1",
        "input_2",
        "weight",
        "country",
        "note",
        "output.score",
    ]
    assert table.column("input_2").to_pylist() == [2.0, 5.0]
    assert table.column("weight").to_pylist() == [0.5, 1.5]
    assert table.schema.field("country").type == pa.string()
    assert table.column("country").to_pylist() == ["fr", "ch"]
    assert table.schema.field("note").type == pa.string()
    assert table.column("note").to_pylist() == ["ok", "late"]
    assert table.schema.field("output.score").type == pa.float32()


async def test_requests_whose_columns_change_share_a_file_when_the_schemas_unify(
    root: str,
) -> None:
    log = make_log(root)
    log.record("a", "v1", {"x": np.array([1.0], dtype=np.float32)}, {}, NOON)
    log.record("b", "v2", {"x": np.array([2.0]), "y": np.array([3])}, {}, NOON)
    log.record("c", "v3", {"x": np.array(["text"])}, {}, NOON)
    await log.close()

    first, second = (read(uri) for uri in logged(root))
    assert first.column("x").to_pylist() == [1.0, 2.0]
    assert first.column("y").to_pylist() == [None, 3]
    assert second.column("x").to_pylist() == ["text"]
    assert log.files_written == 2


async def test_a_batch_is_written_when_max_rows_rows_are_buffered(root: str) -> None:
    log = make_log(root, max_rows=5)
    for number in range(3):
        log.record(f"r{number}", "v1", *tabular(2, seed=number), NOON)
    files = await wait_for_files(root, 1)
    assert len(files) == 1
    assert read(files[0]).num_rows == 6
    await log.close()
    assert len(logged(root)) == 1


async def test_a_batch_is_written_max_interval_after_its_first_row(root: str) -> None:
    log = make_log(root, max_interval=0.2)
    log.start(asyncio.get_running_loop())
    log.record("r0", "v1", *tabular(1), NOON)
    await asyncio.sleep(0.05)
    log.record("r1", "v1", *tabular(1), NOON)
    files = await wait_for_files(root, 1)
    assert [read(uri).column("request_id").to_pylist() for uri in files] == [["r0", "r1"]]

    log.record("r2", "v1", *tabular(1), NOON)
    files = await wait_for_files(root, 2)
    assert len(files) == 2
    await log.close()
    assert log.files_written == 2


async def test_close_writes_what_is_buffered_and_later_requests_are_ignored(root: str) -> None:
    log = make_log(root)
    log.record("r0", "v1", *tabular(4), NOON)
    assert logged(root) == []
    await log.close()
    log.record("r1", "v1", *tabular(4), NOON)
    await log.close()
    assert [read(uri).num_rows for uri in logged(root)] == [4]


async def test_the_folder_is_the_utc_date_of_the_first_row_and_seq_keeps_growing(
    root: str,
) -> None:
    log = make_log(root, max_rows=1)
    log.record("late", "v1", *tabular(1), datetime(2024, 5, 1, 23, 59, tzinfo=UTC).timestamp())
    log.record("early", "v1", *tabular(1), datetime(2024, 5, 2, 0, 1, tzinfo=UTC).timestamp())
    await log.close()
    assert logged(root) == [
        f"{root}/requests/wine/2024-05-01/wine-predictor-0-000000.parquet",
        f"{root}/requests/wine/2024-05-02/wine-predictor-0-000001.parquet",
    ]


async def test_seq_continues_after_the_files_a_previous_pod_left(root: str) -> None:
    folder = storage.join(root, "requests", "wine", DAY)
    storage.write_bytes(storage.join(folder, "wine-predictor-0-000007.parquet"), b"earlier")
    storage.write_bytes(storage.join(folder, "wine-predictor-0-1-000042.parquet"), b"other pod")
    storage.write_bytes(storage.join(folder, "wine-predictor-0-000003.parquet"), b"earlier")

    first = make_log(root)
    first.record("r0", "v1", *tabular(1), NOON)
    await first.close()
    restarted = make_log(root)
    restarted.record("r1", "v1", *tabular(1), NOON)
    await restarted.close()

    names = [uri.rsplit("/", 1)[1] for uri in logged(root)]
    assert names == [
        "wine-predictor-0-000003.parquet",
        "wine-predictor-0-000007.parquet",
        "wine-predictor-0-000008.parquet",
        "wine-predictor-0-000009.parquet",
        "wine-predictor-0-1-000042.parquet",
    ]
    assert storage.read_bytes(storage.join(folder, "wine-predictor-0-000007.parquet")) == (
        b"earlier"
    )


async def test_sampling_logs_whole_requests_at_the_rate_and_is_seeded(tmp_path: Path) -> None:
    rows = {f"r{number}": 1 + number % 3 for number in range(2000)}

    async def sample(directory: str) -> Counter[str]:
        store = (tmp_path / directory).as_uri()
        log = make_log(store, sample_rate=0.5, seed=7, max_rows=500)
        for request_id, count in rows.items():
            log.record(request_id, "v1", *tabular(count), NOON)
        await log.close()
        return Counter(
            request_id
            for uri in logged(store)
            for request_id in read(uri).column("request_id").to_pylist()
        )

    first, second = await sample("one"), await sample("two")
    assert 900 <= len(first) <= 1100
    assert all(count == rows[request_id] for request_id, count in first.items())
    assert first == second


async def test_a_sample_rate_of_zero_logs_nothing(root: str) -> None:
    log = make_log(root, sample_rate=0.0)
    for number in range(100):
        log.record(f"r{number}", "v1", *tabular(1), NOON)
    await log.close()
    assert logged(root) == []
    assert (log.rows_logged, log.files_written, log.rows_dropped) == (0, 0, 0)


async def test_a_request_whose_arrays_disagree_on_rows_is_dropped(root: str) -> None:
    log = make_log(root)
    inputs, outputs = tabular(3)
    log.record("bad", "v1", inputs, {"label": np.array([1, 2])}, NOON)
    log.record("good", "v1", inputs, outputs, NOON)
    await log.close()
    assert read(logged(root)[0]).column("request_id").to_pylist() == ["good"] * 3
    assert log.rows_dropped == 3


async def test_an_unwritable_destination_is_counted_and_reported_never_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the store should be")
    log = make_log(blocker.as_uri(), max_rows=2)
    for number in range(5):
        log.record(f"r{number}", "v1", *tabular(1), NOON)
    await log.close()

    assert (log.write_errors, log.files_written, log.rows_logged) == (3, 0, 0)
    errors = capsys.readouterr().err
    assert "request log: wine: 2 rows not written:" in errors
    assert "Not a directory" in errors
    assert "3 file(s) could not be written" in errors


async def test_a_batch_that_cannot_be_written_does_not_lose_the_next(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_bytes = storage.write_bytes
    attempts: list[str] = []

    def failing_first_batch(uri: str, data: bytes) -> str:
        attempts.append(uri)
        if uri.endswith("-000000.parquet"):
            raise storage.StorageError(uri, "cannot write: the bucket is gone")
        return write_bytes(uri, data)

    monkeypatch.setattr(request_log.storage, "write_bytes", failing_first_batch)
    log = make_log(root, max_rows=1)
    log.record("lost", "v1", *tabular(1), NOON)
    log.record("kept", "v1", *tabular(1), NOON)
    await log.close()

    assert len(attempts) == 1 + len(FAST_RETRIES) + 1
    (kept,) = logged(root)
    assert kept.endswith("wine-predictor-0-000001.parquet")
    assert read(kept).column("request_id").to_pylist() == ["kept"]
    assert (log.write_errors, log.files_written) == (1, 1)


@pytest.fixture
def stalled_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Writes block until the returned event is set (it is, at the end of the test)."""
    release = threading.Event()
    write_bytes = storage.write_bytes

    def stalled(uri: str, data: bytes) -> str:
        release.wait()
        return write_bytes(uri, data)

    monkeypatch.setattr(request_log.storage, "write_bytes", stalled)
    yield release
    release.set()


async def test_new_samples_are_dropped_while_the_writer_is_far_behind(
    root: str, stalled_writes: threading.Event
) -> None:
    log = make_log(root, max_rows=1, max_pending_batches=2)
    for number in range(10):
        log.record(f"r{number}", "v1", *tabular(1), NOON)
    stalled_writes.set()
    await log.close()

    # One batch being written and two queued; the writer may not have taken the first yet.
    assert 2 <= log.files_written <= 3
    assert log.rows_dropped == 10 - log.files_written


async def test_close_waits_a_bounded_time_and_reports_what_is_pending(
    root: str, stalled_writes: threading.Event, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(root, max_rows=1, close_timeout=0.3)
    for number in range(3):
        log.record(f"r{number}", "v1", *tabular(1), NOON)
    started = time.monotonic()
    await log.close()

    assert time.monotonic() - started < 5
    assert "gave up waiting for the writer after 0.3s" in capsys.readouterr().err
    assert log.files_written == 0


async def test_s3_batches_are_written_and_read_back(s3_bucket: str) -> None:
    log = make_log(s3_bucket, features=FEATURES, max_rows=4)
    for number in range(3):
        log.record(f"r{number}", "v7", *tabular(2, seed=number), NOON)
    await log.close()

    files = logged(s3_bucket)
    assert files == [
        f"{s3_bucket}/requests/wine/{DAY}/wine-predictor-0-000000.parquet",
        f"{s3_bucket}/requests/wine/{DAY}/wine-predictor-0-000001.parquet",
    ]
    tables = [read(uri) for uri in files]
    assert [table.num_rows for table in tables] == [4, 2]
    np.testing.assert_array_equal(
        tables[1].column("malic_acid").to_numpy(), tabular(2, seed=2)[0]["input"][:, 1]
    )

    restarted = make_log(s3_bucket)
    restarted.record("r3", "v7", *tabular(1), NOON)
    await restarted.close()
    assert logged(s3_bucket)[-1].endswith("wine-predictor-0-000002.parquet")


async def test_a_missing_bucket_is_counted_as_write_errors(
    s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(s3_bucket + "-missing")
    log.record("r0", "v1", *tabular(1), NOON)
    await log.close()
    assert (log.write_errors, log.files_written) == (1, 0)
    assert "rows not written" in capsys.readouterr().err


def test_settings_out_of_range_are_refused(root: str) -> None:
    for options in ({"max_rows": 0}, {"max_interval": 0}, {"sample_rate": 1.5}):
        with pytest.raises(ValueError):
            make_log(root, **options)


async def test_record_cost(root: str) -> None:
    """Prints the cost of record() per call; timings are reported, never asserted."""
    log = make_log(root, max_rows=1000, max_pending_batches=10_000)
    log.start(asyncio.get_running_loop())
    inputs, outputs = tabular(1)
    calls = 100_000
    started = time.perf_counter()
    for number in range(calls):
        log.record("request", "v1", inputs, outputs, NOON + number)
    elapsed = time.perf_counter() - started
    print(f"\nrecord(): {elapsed / calls * 1e6:.2f} us per call (1 row, 3 arrays, batches of 1000)")
    await log.close()
    assert log.rows_logged == calls
