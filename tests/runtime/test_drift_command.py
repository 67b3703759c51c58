"""`gyre-runtime drift` end to end: a reference profiled by `gyre-runtime profile`, request
logs in the server's layout (written by the real RequestLog, or by pyarrow for odd files),
the command run as the operator's check Job runs it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from scipy import stats

from gyre_runtime import storage
from gyre_runtime.cli import main
from gyre_runtime.drift.methods import FeatureResult
from gyre_runtime.drift.window import WindowSize, read_window
from gyre_runtime.serving.request_log import RequestLog

NUMERIC = ("f0", "f1", "f2", "f3")
CATEGORICAL = "color"
FEATURES = (*NUMERIC, CATEGORICAL)
MEANS = np.array([0.0, 10.0, -5.0, 100.0])
SCALES = np.array([1.0, 2.0, 0.5, 20.0])
COLORS = np.array(["red", "green", "blue"])
COLOR_SHARES = np.array([0.5, 0.3, 0.2])
REFERENCE_ROWS = 4000
WINDOW_ROWS = 2000
DAY = datetime(2024, 5, 1, tzinfo=UTC)
SERVICE = "wine"
TERMINATION_LIMIT = 4096

Termination = Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class Store:
    """Where a check's reference profile is, and the root its logs and report go under."""

    root: str
    profile_uri: str

    @property
    def requests(self) -> str:
        """The service's request-log prefix, as the operator passes it."""
        return storage.join(self.root, "requests", SERVICE) + "/"

    @property
    def report(self) -> str:
        """Where the check's report goes."""
        return storage.join(self.root, "drift", "monitor", "check-1.json")


def draw(rows: int, seed: int) -> dict[str, np.ndarray]:
    """Rows of the reference's distribution."""
    generator = np.random.default_rng(seed)
    values = generator.normal(MEANS, SCALES, size=(rows, len(NUMERIC)))
    columns = {name: values[:, position] for position, name in enumerate(NUMERIC)}
    return {**columns, CATEGORICAL: generator.choice(COLORS, size=rows, p=COLOR_SHARES)}


REFERENCE = draw(REFERENCE_ROWS, 1)


def window_rows(rows: int, seed: int, shifted: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Rows drawn from the reference's own rows, so that an unshifted window never drifts by
    chance; shifted numeric features move by two scales, a shifted color reverses its shares."""
    generator = np.random.default_rng(seed)
    chosen = generator.choice(REFERENCE_ROWS, size=rows, replace=False)
    columns = {name: values[chosen] for name, values in REFERENCE.items()}
    for position, name in enumerate(NUMERIC):
        if name in shifted:
            columns[name] = columns[name] + 2 * SCALES[position]
    if CATEGORICAL in shifted:
        columns[CATEGORICAL] = generator.choice(COLORS, size=rows, p=COLOR_SHARES[::-1])
    return columns


def profile_reference(root: str, directory: Path, columns: Mapping[str, np.ndarray]) -> str:
    """Profile the columns (plus a target) with the real command; the profile's URI."""
    table = pa.table({**columns, "target": np.arange(len(columns[next(iter(columns))])) % 3})
    source = directory / "reference.csv"
    pacsv.write_csv(table, source)
    schema = {
        "features": [
            {"name": name, "type": "categorical" if name == CATEGORICAL else "numeric"}
            for name in columns
        ],
        "target": "target",
    }
    argv = ["profile", "--dataset", "reference", "--source", source.as_uri(), "--format", "csv"]
    argv += ["--artifact-root", root, "--schema", json.dumps(schema)]
    message = directory / "profile-termination-log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GYRE_TERMINATION_MESSAGE_PATH", str(message))
        assert main(argv) == 0
    profile_uri: str = json.loads(message.read_text())["profileUri"]
    return profile_uri


def server_log(
    root: str, columns: Mapping[str, np.ndarray], start: datetime, pod: str, step: float = 0.01
) -> None:
    """Log the rows through the real RequestLog, 50-row requests `step` seconds apart."""
    matrix = np.column_stack([columns[name] for name in NUMERIC]).astype(np.float32)
    colors = np.asarray(columns[CATEGORICAL])

    async def log_all() -> None:
        log = RequestLog(root, SERVICE, pod, features=NUMERIC, max_rows=500)
        for number, first in enumerate(range(0, len(matrix), 50)):
            rows = slice(first, first + 50)
            inputs = {"input": matrix[rows], CATEGORICAL: colors[rows]}
            outputs = {"label": np.zeros(len(matrix[rows]), dtype=np.int64)}
            moment = (start + timedelta(seconds=number * step)).timestamp()
            log.record(f"{pod}-{number}", "v1", inputs, outputs, moment)
        await log.close()
        assert log.files_written and not log.write_errors

    asyncio.run(log_all())


def write_log_file(
    requests: str, day: str, name: str, stamps: Sequence[datetime], **columns: Any
) -> str:
    """One log file written with pyarrow in the server's layout: its URI."""
    table = pa.table(
        {
            "request_id": [f"r{i}" for i in range(len(stamps))],
            "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            "model_version": ["v1"] * len(stamps),
            **columns,
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    uri = storage.join(requests, day, name)
    storage.write_bytes(uri, sink.getvalue().to_pybytes())
    return uri


def drift_args(
    store: Store, *extra: str, window: Sequence[str] = ("--window-requests", "100000")
) -> list[str]:
    """The command line of the operator's check Job."""
    return [
        "drift",
        "--monitor",
        "monitor",
        "--check-id",
        "check-1",
        "--reference",
        store.profile_uri,
        "--requests",
        store.requests,
        *window,
        "--report",
        store.report,
        *extra,
    ]


def read_report(uri: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(storage.read_bytes(uri))
    return report


@pytest.fixture(scope="module")
def reference_profile(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The reference profile's URI, shared (read only) by the module's tests."""
    directory = tmp_path_factory.mktemp("reference")
    return profile_reference((directory / "artifacts").as_uri(), directory, REFERENCE)


@pytest.fixture
def store(reference_profile: str, tmp_path: Path) -> Store:
    """The shared reference; request logs and report under a root of the test's own."""
    return Store((tmp_path / "artifacts").as_uri(), reference_profile)


@pytest.fixture
def drift(termination_message: Termination) -> Callable[..., dict[str, Any]]:
    """Run the command; its result, failing the test when it fails."""

    def run(argv: list[str]) -> dict[str, Any]:
        assert main(argv) == 0, termination_message()
        return termination_message()

    return run


@pytest.fixture
def drift_fails(termination_message: Termination) -> Callable[..., dict[str, Any]]:
    """Run the command; its termination message, failing the test when it succeeds."""

    def run(argv: list[str]) -> dict[str, Any]:
        assert main(argv) == 1, termination_message()
        return termination_message()

    return run


def test_a_shifted_window_drifts_on_exactly_the_shifted_features(
    store: Store, drift: Callable[..., dict[str, Any]]
) -> None:
    shifted = ("f1", "f3", CATEGORICAL)
    logged = window_rows(WINDOW_ROWS, 2, shifted)
    server_log(store.root, logged, DAY, "wine-0")

    result = drift(drift_args(store))

    assert result["verdict"] == "Drift"
    assert result["samples"] == WINDOW_ROWS
    assert result["referenceRows"] == REFERENCE_ROWS
    assert result["driftedFeatureShare"] == pytest.approx(len(shifted) / len(FEATURES))
    assert result["reportUri"] == store.report
    assert result["featuresOmitted"] == 0
    by_name = {feature["name"]: feature for feature in result["features"]}
    assert list(by_name) == list(FEATURES)
    assert {name for name, feature in by_name.items() if feature["drifted"]} == set(shifted)
    assert set(by_name["f1"]["scores"]) >= {"psi", "ks", "ks_statistic", "wasserstein"}
    assert set(by_name[CATEGORICAL]["scores"]) >= {"chi_squared", "jensen_shannon"}
    for feature in result["features"]:
        assert feature["score"] == feature["scores"][feature["method"]]
        assert all(float(f"{s:.6g}") == s for s in feature["scores"].values() if s is not None)

    report = read_report(store.report)
    assert report["verdict"] == "Drift" and report["checkId"] == "check-1"
    assert report["monitor"] == "monitor"
    assert report["reference"]["profileUri"] == store.profile_uri
    assert report["reference"]["rows"] == REFERENCE_ROWS
    assert report["window"]["files"] == storage.list_files(store.requests)
    assert report["settings"]["psi_bins"] == 10
    assert [set(feature) for feature in report["features"]] == [
        {field.name for field in fields(FeatureResult)}
    ] * len(FEATURES)
    assert [f["samples"] for f in report["features"]] == [WINDOW_ROWS] * len(FEATURES)
    for feature in report["features"][: len(NUMERIC)]:
        # The server logs float32: the window holds those values, widened.
        window = logged[feature["name"]].astype(np.float32).astype(np.float64)
        expected = stats.ks_2samp(REFERENCE[feature["name"]], window)
        assert feature["scores"]["ks_statistic"] == pytest.approx(expected.statistic, abs=1e-9)


def test_an_unshifted_window_is_no_drift(
    store: Store, drift: Callable[..., dict[str, Any]]
) -> None:
    server_log(store.root, window_rows(WINDOW_ROWS, 3), DAY, "wine-0")

    result = drift(drift_args(store))

    assert result["verdict"] == "NoDrift"
    assert result["driftedFeatureShare"] == 0
    assert not any(feature["drifted"] for feature in result["features"])
    assert result["windowStart"] == "2024-05-01T00:00:00Z"
    assert result["windowEnd"] == "2024-05-01T00:00:00Z"


def test_fewer_rows_than_min_samples_is_insufficient_data(
    store: Store, drift: Callable[..., dict[str, Any]]
) -> None:
    server_log(store.root, window_rows(400, 4, NUMERIC), DAY, "wine-0")

    result = drift(drift_args(store, "--min-samples", "401"))

    assert result["verdict"] == "InsufficientData"
    assert result["samples"] == 400
    assert result["driftedFeatureShare"] is None
    assert result["features"] == []
    report = read_report(store.report)
    assert report["verdict"] == "InsufficientData" and report["settings"]["min_samples"] == 401
    assert len(report["window"]["files"]) == 1


def test_only_the_given_features_are_checked(
    store: Store, drift: Callable[..., dict[str, Any]]
) -> None:
    server_log(store.root, window_rows(WINDOW_ROWS, 5, ("f0",)), DAY, "wine-0")

    result = drift(drift_args(store, "--feature", "f0", CATEGORICAL, "--feature", "f2"))

    assert [(f["name"], f["drifted"]) for f in result["features"]] == [
        ("f0", True),
        ("f2", False),
        (CATEGORICAL, False),
    ]
    assert result["verdict"] == "NoDrift"  # 1 of 3 features, below the default half


def test_methods_and_policy_flags_reach_the_statistics(
    store: Store, drift: Callable[..., dict[str, Any]]
) -> None:
    server_log(store.root, window_rows(WINDOW_ROWS, 6, ("f0",)), DAY, "wine-0")
    methods = {
        "numeric": {"psi": {"enabled": False}, "ks": {"pValue": 0.01, "correction": "none"}},
        "categorical": {"jensenShannon": {"threshold": 0.5}},
    }

    result = drift(
        drift_args(store, "--methods", json.dumps(methods), "--drifted-feature-share", "0.2")
    )

    assert result["verdict"] == "Drift"
    f0 = next(feature for feature in result["features"] if feature["name"] == "f0")
    assert f0["method"] == "ks" and f0["drifted"]
    settings = read_report(store.report)["settings"]
    assert settings["psi"] is False and settings["ks_p_value"] == 0.01
    assert settings["ks_correction"] == "none" and settings["jensen_shannon_threshold"] == 0.5
    assert settings["drifted_feature_share"] == 0.2 and settings["psi_bins"] == 10


def day_log(store: Store, day: datetime, pod: str, seq: int, stamps: Sequence[datetime]) -> str:
    """A pyarrow-written log of len(stamps) rows whose f0 is each row's POSIX time."""
    seconds = np.array([stamp.timestamp() for stamp in stamps])
    columns = {name: np.zeros(len(stamps)) for name in NUMERIC} | {"f0": seconds}
    return write_log_file(
        store.requests,
        day.strftime("%Y-%m-%d"),
        f"{pod}-{seq:06d}.parquet",
        stamps,
        **columns,
        color=["red"] * len(stamps),
    )


def test_window_requests_takes_the_newest_rows_across_pods_and_dates(store: Store) -> None:
    second = timedelta(seconds=1)
    stamps = {
        # Three days apart: the oldest folder is never read for 25 rows.
        (DAY - timedelta(days=3), "wine-0", 0): [
            DAY - timedelta(days=3) + i * second for i in range(50)
        ],
        (DAY, "wine-0", 0): [DAY + (2 * i) * second for i in range(10)],
        (DAY, "wine-1", 0): [DAY + (2 * i + 1) * second for i in range(10)],
        (DAY, "wine-0", 1): [DAY + (20 + i) * second for i in range(5)],
        # A batch begun before midnight holds rows of the next day.
        (DAY - timedelta(days=1), "wine-1", 7): [DAY - 2 * second + i * second for i in range(4)],
    }
    files = {key: day_log(store, *key, rows) for key, rows in stamps.items()}
    everything = sorted(moment for rows in stamps.values() for moment in rows)

    window = read_window(store.requests, NUMERIC, [CATEGORICAL], WindowSize(requests=25), DAY)

    newest = everything[-25:]
    np.testing.assert_array_equal(
        np.sort(window.numeric[0]), [moment.timestamp() for moment in newest]
    )
    assert (window.start, window.end) == (newest[0], newest[-1])
    assert set(window.files) == set(files.values()) - {files[DAY - timedelta(days=3), "wine-0", 0]}
    assert window.categorical[CATEGORICAL].tolist() == ["red"] * 25
    assert window.numeric.flags.c_contiguous and window.numeric.dtype == np.float64


def test_window_requests_reads_only_the_files_that_can_hold_them(store: Store) -> None:
    """Two pods' logs of a busy day: the footers tell which few files hold the newest rows."""
    tenth = timedelta(seconds=0.1)
    files = {}
    for seq in range(10):
        for pod, offset in (("wine-0", 0), ("wine-1", 5)):
            stamps = [DAY + (seq * 100 + offset + i) * tenth for i in range(100)]
            files[pod, seq] = day_log(store, DAY, pod, seq, stamps)

    window = read_window(store.requests, NUMERIC, [CATEGORICAL], WindowSize(requests=150), DAY)

    # The two newest files hold 200 rows from 90.0 s; wine-1's file before them ends at
    # 90.4 s, so it may hold some of the newest 150; every other file ends before 90 s.
    assert set(window.files) == {files["wine-0", 9], files["wine-1", 9], files["wine-1", 8]}
    newest = sorted(window.numeric[0])
    expected = sorted(
        (DAY + (seq * 100 + offset + i) * tenth).timestamp()
        for seq in range(10) for offset in (0, 5) for i in range(100)
    )[-150:]  # fmt: skip
    np.testing.assert_allclose(newest, expected)


def test_window_requests_through_the_command(
    store: Store, drift: Callable[..., dict[str, Any]]
) -> None:
    server_log(store.root, window_rows(1000, 7), DAY - timedelta(days=1), "wine-0", step=1)
    hour = DAY + timedelta(hours=1)
    server_log(store.root, window_rows(WINDOW_ROWS, 8), hour, "wine-1", step=1)
    server_log(store.root, window_rows(1000, 9), hour + timedelta(seconds=0.5), "wine-2", step=1)

    result = drift(drift_args(store, window=("--window-requests", "2500")))

    assert result["samples"] == 2500
    # 50-row requests a second apart, 40 s of wine-1 and 20 s of wine-2: the newest 2500
    # rows are wine-1's 1000 of 01:00:20 to :39, then 15 s of both pods from 01:00:05; the
    # day before, which cannot hold rows that late, is not read.
    assert result["windowStart"] == "2024-05-01T01:00:05Z"
    assert result["windowEnd"] == "2024-05-01T01:00:39Z"
    assert all("/2024-05-01/" in uri for uri in read_report(store.report)["window"]["files"])


def test_window_seconds_takes_the_rows_logged_since(
    store: Store, drift: Callable[..., dict[str, Any]]
) -> None:
    now = datetime.now(UTC)
    server_log(store.root, window_rows(1000, 10), now - timedelta(hours=2), "wine-0")
    server_log(store.root, window_rows(800, 11), now - timedelta(minutes=30), "wine-0")
    server_log(store.root, window_rows(600, 12), now - timedelta(minutes=5), "wine-1")

    result = drift(drift_args(store, window=("--window-seconds", "3600")))

    assert result["samples"] == 1400
    start = datetime.strptime(result["windowStart"], "%Y-%m-%dT%H:%M:%S%z")
    assert start == (now - timedelta(minutes=30)).replace(microsecond=0)


def test_files_that_are_not_logs_are_ignored(
    store: Store, drift: Callable[..., dict[str, Any]]
) -> None:
    server_log(store.root, window_rows(WINDOW_ROWS, 13), DAY, "wine-0")
    folder = storage.join(store.requests, "2024-05-01")
    for name in (".wine-0-000009.parquet.tmp", "_SUCCESS", ".hidden.parquet", "notes.txt"):
        storage.write_bytes(storage.join(folder, name), b"not parquet")
    storage.write_bytes(storage.join(store.requests, "latest.parquet"), b"not parquet")

    assert drift(drift_args(store))["samples"] == WINDOW_ROWS


def test_numbers_logged_as_text_are_read_as_numbers(
    store: Store, drift: Callable[..., dict[str, Any]]
) -> None:
    rows = window_rows(WINDOW_ROWS, 14)
    text = {name: rows[name].astype(str) for name in NUMERIC}
    day_stamps = [DAY] * WINDOW_ROWS
    write_log_file(
        store.requests,
        "2024-05-01",
        "wine-0-000000.parquet",
        day_stamps,
        **text,
        color=rows[CATEGORICAL],
    )

    assert drift(drift_args(store))["verdict"] == "NoDrift"


def wide_columns(count: int, rows: int, seed: int, shifted: int = 0) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(seed)
    values = generator.normal(size=(count, rows))
    values[:shifted] += 3
    return {f"feature_{i:03d}": values[i] for i in range(count)}


def test_two_hundred_features_fit_the_termination_message(
    tmp_path: Path, drift: Callable[..., dict[str, Any]]
) -> None:
    root = (tmp_path / "artifacts").as_uri()
    store = Store(root, profile_reference(root, tmp_path, wide_columns(200, 1000, 15)))
    shifted = 30
    current = wide_columns(200, 600, 16, shifted=shifted)
    write_log_file(store.requests, "2024-05-01", "wine-0-000000.parquet", [DAY] * 600, **current)

    result = drift(drift_args(store))

    assert len(json.dumps(result, separators=(",", ":")).encode()) <= TERMINATION_LIMIT
    listed = result["features"]
    assert result["featuresOmitted"] == 200 - len(listed) > 0
    drifted = {f"feature_{i:03d}" for i in range(shifted)}
    assert {f["name"] for f in listed[:shifted]} == drifted
    assert all(f["drifted"] for f in listed[:shifted])
    assert not any(f["drifted"] for f in listed[shifted:])
    assert all("scores" not in f for f in listed)
    report = read_report(store.report)
    assert len(report["features"]) == 200
    assert {f["name"] for f in report["features"] if f["drifted"]} == drifted
    # The undrifted features listed are those nearest their threshold (PSI decides them).
    listed_psi = {f["name"]: f["scores"]["psi"] for f in report["features"][shifted:]}
    kept = [listed_psi.pop(f["name"]) for f in listed[shifted:]]
    assert min(kept) >= max(listed_psi.values())


def test_a_missing_profile_is_reference_unreadable(
    store: Store, drift_fails: Callable[..., dict[str, Any]]
) -> None:
    store = Store(store.root, storage.join(store.root, "datasets", "gone", "profile.json"))
    message = drift_fails(drift_args(store))
    assert message["reason"] == "ReferenceUnreadable"
    assert store.profile_uri in message["message"]


def test_a_missing_sample_is_reference_unreadable(
    store: Store, tmp_path: Path, drift_fails: Callable[..., dict[str, Any]]
) -> None:
    profile = read_report(store.profile_uri)
    sample = profile["sample"]["uri"] = (tmp_path / "gone" / "sample.parquet").as_uri()
    moved = storage.join(store.root, "profile.json")
    storage.write_bytes(moved, json.dumps(profile).encode())

    message = drift_fails(drift_args(Store(store.root, moved)))

    assert message["reason"] == "ReferenceUnreadable"
    assert sample in message["message"]


def test_a_feature_missing_from_the_logs_is_named(
    store: Store, drift_fails: Callable[..., dict[str, Any]]
) -> None:
    rows = window_rows(WINDOW_ROWS, 17)
    del rows["f2"]
    write_log_file(
        store.requests, "2024-05-01", "wine-0-000000.parquet", [DAY] * WINDOW_ROWS, **rows
    )

    message = drift_fails(drift_args(store))

    assert message["reason"] == "FeatureMissing"
    assert "'f2'" in message["message"]
    assert "request_id, timestamp, model_version, f0, f1, f3, color" in message["message"]


def test_text_in_a_numeric_feature_is_invalid_data(
    store: Store, drift_fails: Callable[..., dict[str, Any]]
) -> None:
    rows = window_rows(WINDOW_ROWS, 18)
    f1 = rows["f1"].astype(str)
    f1[7] = "seven"
    rows["f1"] = f1
    uri = write_log_file(
        store.requests, "2024-05-01", "wine-0-000000.parquet", [DAY] * WINDOW_ROWS, **rows
    )

    message = drift_fails(drift_args(store))

    assert message["reason"] == "InvalidData"
    assert "'f1'" in message["message"] and uri in message["message"]
    assert "seven" in message["message"]


def test_an_unreadable_log_file_is_invalid_data(
    store: Store, drift_fails: Callable[..., dict[str, Any]]
) -> None:
    server_log(store.root, window_rows(WINDOW_ROWS, 19), DAY, "wine-0")
    broken = storage.join(store.requests, "2024-05-01", "wine-9-000000.parquet")
    storage.write_bytes(broken, b"PAR1 and then nothing")

    message = drift_fails(drift_args(store))

    assert message["reason"] == "InvalidData"
    assert broken in message["message"]


@pytest.mark.parametrize("window", [("--window-requests", "10"), ("--window-seconds", "60")])
def test_no_logs_is_an_empty_window(
    store: Store, drift_fails: Callable[..., dict[str, Any]], window: tuple[str, str]
) -> None:
    message = drift_fails(drift_args(store, window=window))
    assert message["reason"] == "EmptyWindow"
    assert store.requests in message["message"]


def test_only_old_logs_is_an_empty_window(
    store: Store, drift_fails: Callable[..., dict[str, Any]]
) -> None:
    server_log(store.root, window_rows(100, 20), datetime.now(UTC) - timedelta(minutes=3), "wine-0")

    message = drift_fails(drift_args(store, window=("--window-seconds", "60")))

    assert message["reason"] == "EmptyWindow"
    assert store.requests in message["message"] and "60 s" in message["message"]


def test_an_unwritable_report_is_report_unwritable(
    store: Store, tmp_path: Path, drift_fails: Callable[..., dict[str, Any]]
) -> None:
    server_log(store.root, window_rows(WINDOW_ROWS, 21), DAY, "wine-0")
    (tmp_path / "a-file").write_text("")
    report = (tmp_path / "a-file" / "report.json").as_uri()

    argv = drift_args(store)
    argv[argv.index("--report") + 1] = report
    message = drift_fails(argv)

    assert message["reason"] == "ReportUnwritable"
    assert report in message["message"]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--methods", "{not json"], "--methods is not JSON"),
        (["--methods", "[1]"], "--methods must be a JSON object"),
        (["--methods", '{"text": {}}'], "unknown key 'text'"),
        (["--methods", '{"numeric": {"chiSquared": {}}}'], "unknown key 'chiSquared'"),
        (["--methods", '{"numeric": {"psi": {"bins": 1}}}'], "numeric.psi.bins must be"),
        (["--methods", '{"numeric": {"psi": {"bins": 2.5}}}'], "numeric.psi.bins must be"),
        (["--methods", '{"numeric": {"psi": {"threshold": 0}}}'], "numeric.psi.threshold"),
        (["--methods", '{"numeric": {"ks": {"pValue": 1}}}'], "numeric.ks.pValue must be"),
        (["--methods", '{"numeric": {"ks": {"correction": "holm"}}}'], "one of bonferroni"),
        (["--methods", '{"categorical": {"chiSquared": {"enabled": 1}}}'], "true or false"),
        (["--methods", '{"categorical": {"jensenShannon": 0.1}}'], "must be a JSON object"),
        (["--min-samples", "0"], "--min-samples must be"),
        (["--drifted-feature-share", "1.5"], "--drifted-feature-share must be"),
        (["--feature", "f0", "target"], "--feature 'target'"),
    ],
)
def test_bad_arguments_are_invalid_argument(
    store: Store, drift_fails: Callable[..., dict[str, Any]], flags: list[str], named: str
) -> None:
    server_log(store.root, window_rows(WINDOW_ROWS, 22), DAY, "wine-0")
    message = drift_fails(drift_args(store, *flags))
    assert message["reason"] == "InvalidArgument"
    assert named in message["message"]


@pytest.mark.parametrize(
    "window", [("--window-requests", "0"), ("--window-seconds", "0"), ("--window-seconds", "nan")]
)
def test_a_bad_window_is_invalid_argument(
    store: Store, drift_fails: Callable[..., dict[str, Any]], window: tuple[str, str]
) -> None:
    message = drift_fails(drift_args(store, window=window))
    assert message["reason"] == "InvalidArgument"
    assert message["message"].startswith(f"{window[0]} must be")


def test_a_check_on_s3(
    tmp_path: Path, s3_bucket: str, drift: Callable[..., dict[str, Any]]
) -> None:
    store = Store(s3_bucket, profile_reference(s3_bucket, tmp_path, REFERENCE))
    server_log(s3_bucket, window_rows(WINDOW_ROWS, 23, ("f0", "f2", CATEGORICAL)), DAY, "wine-0")

    result = drift(drift_args(store))

    assert result["verdict"] == "Drift" and result["samples"] == WINDOW_ROWS
    assert read_report(store.report)["window"]["files"] == storage.list_files(store.requests)


def test_the_installed_command_reports_in_the_termination_message(
    store: Store, tmp_path: Path
) -> None:
    server_log(store.root, window_rows(WINDOW_ROWS, 24), DAY, "wine-0")
    command = shutil.which("gyre-runtime")
    assert command is not None
    log = tmp_path / "termination-log"
    environment = {**os.environ, "GYRE_TERMINATION_MESSAGE_PATH": str(log)}

    completed = run_command([command, *drift_args(store)], environment)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(log.read_text()) == json.loads(completed.stdout)
    assert json.loads(completed.stdout)["verdict"] == "NoDrift"

    failed = run_command([command, *drift_args(store, "--feature", "nope")], environment)
    assert failed.returncode == 1
    assert json.loads(log.read_text())["reason"] == "InvalidArgument"


def run_command(argv: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=environment, check=False)
