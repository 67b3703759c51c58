"""Fixtures for the runtime tests: scikit-learn's real data sets on disk, a real S3 API.

Data sets: wine, breast_cancer and diabetes (they ship with scikit-learn), written as CSV or
Parquet with the feature names as columns plus `target`, each returned as a DataFixture
`(uri, schema, frame)`: the file's URI, the Dataset's spec.schema in its wire form, and the
data as a pyarrow Table. S3: moto's server on 127.0.0.1 for the session; `s3_bucket` points
the AWS_* variables at it and creates a fresh bucket for the test.
"""

from __future__ import annotations

import copy
import functools
import http.server
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from sklearn import datasets as sklearn_datasets

SKLEARN_DATASETS = ("wine", "breast_cancer", "diabetes")
FORMATS = ("csv", "parquet")


class DataFixture(NamedTuple):
    """A data set written to disk: its URI, wire-form spec.schema and content."""

    uri: str
    schema: dict[str, Any]
    frame: pa.Table

    @property
    def path(self) -> Path:
        """The local path of the file."""
        return Path(self.uri.removeprefix("file://"))

    @property
    def features(self) -> list[str]:
        """The declared feature names, in order."""
        return [feature["name"] for feature in self.schema["features"]]


@functools.cache
def sklearn_table(name: str) -> tuple[pa.Table, dict[str, Any]]:
    """A scikit-learn data set as a Table (features + `target`) and its spec.schema."""
    bunch = getattr(sklearn_datasets, f"load_{name}")()
    features = [str(feature) for feature in bunch.feature_names]
    target = np.asarray(bunch.target)
    columns = {feature: bunch.data[:, i] for i, feature in enumerate(features)}
    columns["target"] = target if target.dtype.kind == "f" else target.astype(np.int64)
    schema = {
        "features": [{"name": feature, "type": "numeric"} for feature in features],
        "target": "target",
    }
    return pa.table(columns), schema


def write_table(table: pa.Table, path: Path, fmt: str) -> str:
    """Write a Table as CSV or Parquet; return its file:// URI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path.as_uri()


def write_sklearn_dataset(name: str, fmt: str, directory: Path) -> DataFixture:
    """Write one scikit-learn data set as `<directory>/<name>.<fmt>`."""
    table, schema = sklearn_table(name)
    uri = write_table(table, directory / f"{name}.{fmt}", fmt)
    return DataFixture(uri, copy.deepcopy(schema), table)


@pytest.fixture
def table_writer() -> Callable[[pa.Table, Path, str], str]:
    """write_table(table, path, fmt) -> file:// URI, for tests that build their own data."""
    return write_table


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[[str, str], DataFixture]:
    """A factory: make_dataset("wine", "csv") writes the data set into tmp_path."""
    return functools.partial(write_sklearn_dataset, directory=tmp_path)


@pytest.fixture(params=[(name, fmt) for name in SKLEARN_DATASETS for fmt in FORMATS])
def sklearn_dataset(request: pytest.FixtureRequest, tmp_path: Path) -> DataFixture:
    """Each of wine, breast_cancer and diabetes, as CSV and as Parquet."""
    name, fmt = request.param
    return write_sklearn_dataset(name, fmt, tmp_path)


@pytest.fixture
def wine_csv(tmp_path: Path) -> DataFixture:
    """scikit-learn's wine data (178 rows, 13 numeric features, 3 classes) as CSV."""
    return write_sklearn_dataset("wine", "csv", tmp_path)


@pytest.fixture
def wine_parquet(tmp_path: Path) -> DataFixture:
    """scikit-learn's wine data as Parquet."""
    return write_sklearn_dataset("wine", "parquet", tmp_path)


@pytest.fixture
def breast_cancer_csv(tmp_path: Path) -> DataFixture:
    """scikit-learn's breast cancer data (569 rows, 30 numeric features, 2 classes) as CSV."""
    return write_sklearn_dataset("breast_cancer", "csv", tmp_path)


@pytest.fixture
def breast_cancer_parquet(tmp_path: Path) -> DataFixture:
    """scikit-learn's breast cancer data as Parquet."""
    return write_sklearn_dataset("breast_cancer", "parquet", tmp_path)


@pytest.fixture
def diabetes_csv(tmp_path: Path) -> DataFixture:
    """scikit-learn's diabetes data (442 rows, 10 numeric features, a numeric target) as CSV."""
    return write_sklearn_dataset("diabetes", "csv", tmp_path)


@pytest.fixture
def diabetes_parquet(tmp_path: Path) -> DataFixture:
    """scikit-learn's diabetes data as Parquet."""
    return write_sklearn_dataset("diabetes", "parquet", tmp_path)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free 127.0.0.1 port for the whole session: its endpoint URL."""
    server_module = pytest.importorskip(
        "moto.server", reason="moto's server extra (moto[server]) is not installed"
    )
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server, AWS_* pointing at it: returns `s3://<bucket>`."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    boto3 = pytest.importorskip("boto3", reason="boto3 (installed with moto) is missing")
    bucket = f"gyre-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    return f"s3://{bucket}"


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1: (directory, base URL ending in `/`)."""
    directory = tmp_path / "www"
    directory.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield directory, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def termination_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], dict[str, Any]]:
    """Point the runtime's termination message at a file; the fixture reads it back as JSON."""
    path = tmp_path / "termination-log"
    monkeypatch.setenv("GYRE_TERMINATION_MESSAGE_PATH", str(path))

    def read() -> dict[str, Any]:
        result: dict[str, Any] = json.loads(path.read_text())
        return result

    return read
