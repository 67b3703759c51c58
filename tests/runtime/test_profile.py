"""`gyre-runtime profile` on scikit-learn's data sets, checked against numpy computed here."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gyre_runtime import storage
from gyre_runtime.cli import main
from gyre_runtime.profile import QUANTILE_LEVELS, quantiles

if TYPE_CHECKING:
    from conftest import DataFixture

Profiler = Callable[..., dict[str, Any]]
TableWriter = Callable[[pa.Table, Path, str], str]


def profile_args(
    source: str, fmt: str, root: str, *, schema: Any = None, validation: Any = None, **flags: Any
) -> list[str]:
    """The command line the operator's profile Job runs."""
    argv = ["profile", "--dataset", "data", "--source", source, "--format", fmt]
    argv += ["--artifact-root", root]
    if schema is not None:
        argv += ["--schema", json.dumps(schema)]
    if validation is not None:
        argv += ["--validation", json.dumps(validation)]
    for flag, value in flags.items():
        argv += [f"--{flag.replace('_', '-')}", str(value)]
    return argv


@pytest.fixture
def root(tmp_path: Path) -> str:
    """A local artifact root."""
    return (tmp_path / "artifacts").as_uri()


@pytest.fixture
def profile(termination_message: Callable[[], dict[str, Any]]) -> Profiler:
    """Run the CLI; return its result, failing the test when it fails."""

    def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        assert main(profile_args(*args, **kwargs)) == 0, termination_message()
        return termination_message()

    return run


@pytest.fixture
def profile_fails(termination_message: Callable[[], dict[str, Any]]) -> Profiler:
    """Run the CLI; return its termination message, failing the test when it succeeds."""

    def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        assert main(profile_args(*args, **kwargs)) == 1
        return termination_message()

    return run


def read_profile(result: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(storage.read_bytes(result["profileUri"]))
    return document


def expected_numeric(values: np.ndarray) -> dict[str, Any]:
    """The figures of a numeric column, computed directly with numpy."""
    finite = values[~np.isnan(values)]
    counts, edges = np.histogram(finite, bins=20)
    return {
        "count": finite.size,
        "nullFraction": 1 - finite.size / values.size,
        "min": finite.min(),
        "max": finite.max(),
        "mean": finite.mean(),
        "std": finite.std(ddof=1),
        "quantiles": np.quantile(finite, QUANTILE_LEVELS),
        "edges": edges,
        "counts": counts,
    }


def assert_numeric_profile(column: dict[str, Any], values: np.ndarray) -> None:
    expected = expected_numeric(values)
    assert column["type"] == "numeric"
    assert column["count"] == expected["count"]
    assert column["nullFraction"] == pytest.approx(expected["nullFraction"])
    for key in ("min", "max", "mean", "std"):
        assert column[key] == pytest.approx(expected[key], rel=1e-12), key
    assert column["quantiles"]["levels"] == list(QUANTILE_LEVELS)
    np.testing.assert_allclose(column["quantiles"]["values"], expected["quantiles"], rtol=1e-12)
    np.testing.assert_allclose(column["histogram"]["edges"], expected["edges"], rtol=1e-12)
    assert column["histogram"]["counts"] == expected["counts"].tolist()


def test_profile_matches_numpy(sklearn_dataset: DataFixture, root: str, profile: Profiler) -> None:
    fmt = sklearn_dataset.uri.rsplit(".", 1)[1]
    result = profile(sklearn_dataset.uri, fmt, root, schema=sklearn_dataset.schema)

    document = read_profile(result)
    frame = sklearn_dataset.frame
    assert result["digest"] == hashlib.sha256(sklearn_dataset.path.read_bytes()).hexdigest()
    assert result["rows"] == document["rows"] == frame.num_rows
    assert result["features"] == len(sklearn_dataset.features)
    assert result["violations"] == []
    assert result["profileUri"] == f"{root}/datasets/data/{result['digest']}/profile.json"
    assert [c["name"] for c in document["features"]] == sklearn_dataset.features
    for column in [*document["features"], document["target"]]:
        assert_numeric_profile(column, frame.column(column["name"]).to_numpy().astype(float))


def test_nulls_categories_and_inferred_schema(
    table_writer: TableWriter, tmp_path: Path, root: str, profile: Profiler
) -> None:
    values = [1.5, None, 3.0, None, 10.0, -2.0, 7.25, None]
    colors = ["red", "blue", None, "red", "red", "green", "blue", "red"]
    uri = table_writer(pa.table({"x": values, "color": colors}), tmp_path / "d.csv", "csv")

    document = read_profile(profile(uri, "csv", root))

    numeric, categorical = document["features"]
    assert_numeric_profile(numeric, np.array(values, dtype=float))
    assert numeric["nullFraction"] == 3 / 8
    assert categorical == {
        "name": "color",
        "type": "categorical",
        "count": 7,
        "nullCount": 1,
        "nullFraction": 1 / 8,
        "distinct": 3,
        "frequencies": {"red": 4, "blue": 2, "green": 1},
        "other": 0,
    }
    assert document["target"] is None


def test_categories_beyond_the_top_hundred_are_counted_as_other(
    table_writer: TableWriter, tmp_path: Path, root: str, profile: Profiler
) -> None:
    codes = [f"c{i:03d}" for i in range(150) for _ in range(1 + (i < 100))]
    uri = table_writer(pa.table({"code": codes}), tmp_path / "codes.parquet", "parquet")

    schema = {"features": [{"name": "code", "type": "categorical"}]}
    (column,) = read_profile(profile(uri, "parquet", root, schema=schema))["features"]

    assert column["distinct"] == 150
    assert len(column["frequencies"]) == 100
    assert set(column["frequencies"]) == {f"c{i:03d}" for i in range(100)}
    assert column["other"] == 50


def test_quantiles_equal_numpy_on_awkward_data() -> None:
    rng = np.random.default_rng(7)
    levels = np.asarray(QUANTILE_LEVELS)
    for values in (
        rng.lognormal(0, 6, 5000),
        np.r_[np.zeros(999), 1e12],
        np.array([4.0]),
        np.r_[rng.normal(size=100), 1e308, -1e308],
        rng.integers(0, 3, 1000).astype(float),
    ):
        np.testing.assert_array_equal(quantiles(values, levels), np.quantile(values, levels))


def test_prefix_dataset(
    table_writer: TableWriter, tmp_path: Path, root: str, profile: Profiler, wine_csv: DataFixture
) -> None:
    frame = wine_csv.frame
    prefix = tmp_path / "wine-parts"
    for number, start in enumerate(range(0, frame.num_rows, 60)):
        table_writer(frame.slice(start, 60), prefix / f"part-{number}.csv", "csv")

    result = profile(prefix.as_uri() + "/", "csv", root, schema=wine_csv.schema)

    lines = "".join(
        f"{path.name}\t{hashlib.sha256(path.read_bytes()).hexdigest()}\n"
        for path in sorted(prefix.iterdir())
    )
    assert result["digest"] == hashlib.sha256(lines.encode()).hexdigest()
    assert result["rows"] == frame.num_rows
    document = read_profile(result)
    assert len(document["files"]) == 3
    assert_numeric_profile(document["features"][0], frame.column(0).to_numpy().astype(float))


def test_sample_is_deterministic_and_bounded(
    breast_cancer_csv: DataFixture, tmp_path: Path, profile: Profiler
) -> None:
    def sample(root: str, rows: int, seed: int) -> pa.Table:
        result = profile(
            breast_cancer_csv.uri,
            "csv",
            root,
            schema=breast_cancer_csv.schema,
            sample_rows=rows,
            seed=seed,
        )
        return pq.read_table(io.BytesIO(storage.read_bytes(result["sampleUri"])))

    first = sample((tmp_path / "a").as_uri(), 100, 3)
    again = sample((tmp_path / "b").as_uri(), 100, 3)
    other = sample((tmp_path / "c").as_uri(), 100, 4)
    everything = sample((tmp_path / "d").as_uri(), 10_000, 3)

    assert first.num_rows == 100
    assert first.equals(again)
    assert not first.equals(other)
    assert everything.num_rows == breast_cancer_csv.frame.num_rows
    chosen = np.sort(np.random.default_rng(3).choice(569, size=100, replace=False))
    expected = breast_cancer_csv.frame.take(pa.array(chosen))
    np.testing.assert_allclose(
        first.column("mean radius").to_numpy(), expected.column("mean radius").to_numpy()
    )
    assert first.column_names == [*breast_cancer_csv.features, "target"]


def test_s3_source_and_artifact_root(
    diabetes_parquet: DataFixture, s3_bucket: str, profile: Profiler
) -> None:
    source = f"{s3_bucket}/data/diabetes.parquet"
    storage.put_file(diabetes_parquet.path, source)

    result = profile(source, "parquet", f"{s3_bucket}/artifacts", schema=diabetes_parquet.schema)

    assert result["digest"] == hashlib.sha256(diabetes_parquet.path.read_bytes()).hexdigest()
    assert result["profileUri"].startswith(f"{s3_bucket}/artifacts/datasets/data/")
    assert storage.exists(result["sampleUri"])
    document = read_profile(result)
    assert_numeric_profile(document["features"][0], diabetes_parquet.frame.column(0).to_numpy())


def test_unreadable_source(root: str, profile_fails: Profiler, tmp_path: Path) -> None:
    source = (tmp_path / "missing.csv").as_uri()
    message = profile_fails(source, "csv", root)

    assert message["reason"] == "SourceUnreadable"
    assert source in message["message"]


@pytest.mark.parametrize("missing", ["alcohol", "target"])
def test_declared_column_missing(
    table_writer: TableWriter,
    wine_csv: DataFixture,
    tmp_path: Path,
    root: str,
    profile_fails: Profiler,
    missing: str,
) -> None:
    table = wine_csv.frame.drop_columns([missing])
    uri = table_writer(table, tmp_path / "without.csv", "csv")

    message = profile_fails(uri, "csv", root, schema=wine_csv.schema)

    assert message["reason"] == "InvalidData"
    assert message["message"].startswith(
        f"column '{missing}' declared in spec.schema is missing from the data (columns: "
    )


def test_text_in_a_numeric_column(
    wine_csv: DataFixture, tmp_path: Path, root: str, profile_fails: Profiler
) -> None:
    text = wine_csv.path.read_text().splitlines()
    header = text[0].split(",")
    cells = text[5].split(",")
    cells[header.index('"ash"')] = "n/a-ish"
    text[5] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(text) + "\n")

    message = profile_fails(bad.as_uri(), "csv", root, schema=wine_csv.schema)

    assert message["reason"] == "InvalidData"
    assert "column 'ash'" in message["message"]
    assert "'n/a-ish'" in message["message"]


def test_validation_rules(
    table_writer: TableWriter,
    tmp_path: Path,
    root: str,
    profile_fails: Profiler,
    wine_csv: DataFixture,
) -> None:
    frame = wine_csv.frame
    ash = frame.column("ash").to_pylist()
    ash[:9] = [None] * 9
    table = frame.set_column(frame.column_names.index("ash"), "ash", pa.array(ash))
    table = table.append_column("grape", pa.array(["merlot", "syrah", "pinot"] * 59 + ["gamay"]))
    uri = table_writer(table, tmp_path / "wine.csv", "csv")
    schema = {**wine_csv.schema}
    schema["features"] = [*schema["features"], {"name": "grape", "type": "categorical"}]
    validation = {
        "minRows": 200,
        "maxNullFraction": 0.0,
        "allowedCategories": {"grape": ["merlot", "syrah"]},
    }

    message = profile_fails(uri, "csv", root, schema=schema, validation=validation)

    assert message["reason"] == "ValidationFailed"
    assert message["violations"] == [
        "rows 178 below validation.minRows 200",
        "column 'ash': null fraction 0.05056 exceeds validation.maxNullFraction 0.0",
        "column 'grape': values 'gamay', 'pinot' not in validation.allowedCategories",
    ]
    assert message["message"] == "; ".join(message["violations"])
    assert message["rows"] == 178
    assert message["digest"] == hashlib.sha256((tmp_path / "wine.csv").read_bytes()).hexdigest()


def test_parquet_with_text_where_numbers_are_declared(
    table_writer: TableWriter, tmp_path: Path, root: str, profile_fails: Profiler
) -> None:
    table = pa.table({"alcohol": ["13.2", "twelve"], "target": [0, 1]})
    uri = table_writer(table, tmp_path / "d.parquet", "parquet")
    schema = {"features": [{"name": "alcohol", "type": "numeric"}], "target": "target"}

    message = profile_fails(uri, "parquet", root, schema=schema)

    assert message["reason"] == "InvalidData"
    assert "column 'alcohol'" in message["message"] and "'twelve'" in message["message"]
