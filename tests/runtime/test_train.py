"""`gyre-runtime train` on scikit-learn's real data sets, checked against scikit-learn itself.

Each expectation is computed here independently: the split, the estimator, the metrics
(sklearn.metrics) and onnxruntime's outputs on the exported model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from sklearn import metrics
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import train_test_split

from gyre_runtime import storage
from gyre_runtime.cli import main
from gyre_runtime.model_artifact import (
    ModelRecord,
    Signature,
    StoredModel,
    TensorSpec,
    run_result,
)
from gyre_runtime.result import RuntimeFailure
from gyre_runtime.training.export import (
    ClassifierOutput,
    RegressorOutput,
    check_agreement,
    disagreement,
    export,
    predict,
)
from gyre_runtime.training.metrics import classification_metrics

ESTIMATORS: dict[str, type[Any]] = {
    "logistic_regression": LogisticRegression,
    "random_forest_classifier": RandomForestClassifier,
    "gradient_boosting_classifier": GradientBoostingClassifier,
    "linear_regression": LinearRegression,
    "ridge": Ridge,
    "random_forest_regressor": RandomForestRegressor,
    "gradient_boosting_regressor": GradientBoostingRegressor,
}
CLASSIFIERS = {"logistic_regression", "random_forest_classifier", "gradient_boosting_classifier"}
CLASSIFICATION_METRICS = {
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "log_loss",
}

# (algorithm, data set, format, hyperparameters): every algorithm on a fitting data set,
# small ensembles to keep the suite fast.
CASES = [
    ("logistic_regression", "breast_cancer", "csv", {"max_iter": 3000}),
    ("logistic_regression", "wine", "parquet", {"max_iter": 3000}),
    ("random_forest_classifier", "wine", "parquet", {"n_estimators": 15, "max_depth": 6}),
    ("gradient_boosting_classifier", "breast_cancer", "parquet", {"n_estimators": 15}),
    ("gradient_boosting_classifier", "wine", "csv", {"n_estimators": 10}),
    ("linear_regression", "diabetes", "csv", {}),
    ("ridge", "diabetes", "parquet", {"alpha": 0.5}),
    ("random_forest_regressor", "diabetes", "csv", {"n_estimators": 15}),
    ("gradient_boosting_regressor", "diabetes", "parquet", {"n_estimators": 20}),
]

Dataset = Any  # conftest.DataFixture: (uri, schema, frame) with .path and .features


def digest(dataset: Dataset) -> str:
    """The content digest of a single-file data set: the file's sha256."""
    return hashlib.sha256(dataset.path.read_bytes()).hexdigest()


def train_args(
    dataset: Dataset,
    algorithm: str,
    output_uri: str,
    *extra: str,
    hyperparameters: dict[str, Any] | None = None,
) -> list[str]:
    """The argv of `gyre-runtime train` as the operator builds it."""
    return [
        "train",
        "--run",
        "run-1",
        "--model",
        "demo",
        "--algorithm",
        algorithm,
        "--dataset-uri",
        dataset.uri,
        "--format",
        dataset.path.suffix.lstrip("."),
        "--dataset-digest",
        digest(dataset),
        "--target",
        "target",
        "--hyperparameters",
        json.dumps(hyperparameters or {}),
        "--output-uri",
        output_uri,
        *extra,
    ]


@pytest.fixture
def train(
    termination_message: Callable[[], dict[str, Any]],
) -> Callable[[list[str]], dict[str, Any]]:
    """Run `gyre-runtime train` successfully; return its termination message."""

    def run(argv: list[str]) -> dict[str, Any]:
        assert main(argv) == 0, termination_message()
        return termination_message()

    return run


@pytest.fixture
def train_fails(
    termination_message: Callable[[], dict[str, Any]],
) -> Callable[[list[str]], dict[str, Any]]:
    """Run `gyre-runtime train` expecting exit 1; return the failure's message."""

    def run(argv: list[str]) -> dict[str, Any]:
        assert main(argv) == 1
        return termination_message()

    return run


class Reference:
    """The run redone with scikit-learn alone: same split, same estimator, same seed."""

    def __init__(
        self,
        table: pa.Table,
        algorithm: str,
        hyperparameters: dict[str, Any],
        features: list[str],
        seed: int = 0,
    ) -> None:
        self.x = np.column_stack(
            [np.asarray(table.column(name).to_numpy(), dtype=np.float32) for name in features]
        )
        self.y = table.column("target").to_numpy(zero_copy_only=False)
        classify = algorithm in CLASSIFIERS
        self.train, self.holdout = train_test_split(
            np.arange(len(self.y)),
            test_size=0.2,
            random_state=seed,
            stratify=self.y if classify else None,
        )
        estimator_class = ESTIMATORS[algorithm]
        seeded = {"random_state": seed} if "random_state" in estimator_class().get_params() else {}
        self.estimator = estimator_class(**seeded, **hyperparameters)
        self.estimator.fit(self.x[self.train], self.y[self.train])

    def metrics(self) -> dict[str, float]:
        """sklearn.metrics on the holdout, as the run's result should report them."""
        x, y = self.x[self.holdout], self.y[self.holdout]
        predicted = self.estimator.predict(x)
        if not hasattr(self.estimator, "classes_"):
            return {
                "rmse": metrics.root_mean_squared_error(y, predicted),
                "mae": metrics.mean_absolute_error(y, predicted),
                "r2": metrics.r2_score(y, predicted),
            }
        proba = self.estimator.predict_proba(x)
        classes = self.estimator.classes_
        roc_auc = (
            metrics.roc_auc_score(y == classes[1], proba[:, 1])
            if len(classes) == 2
            else metrics.roc_auc_score(y, proba, multi_class="ovr", average="macro")
        )
        return {
            "accuracy": metrics.accuracy_score(y, predicted),
            "balanced_accuracy": metrics.balanced_accuracy_score(y, predicted),
            "precision_macro": metrics.precision_score(y, predicted, average="macro"),
            "recall_macro": metrics.recall_score(y, predicted, average="macro"),
            "f1_macro": metrics.f1_score(y, predicted, average="macro"),
            "roc_auc": roc_auc,
            "log_loss": metrics.log_loss(y, proba, labels=classes),
        }

    def check_onnx(self, model: bytes) -> None:
        """onnxruntime's outputs on the holdout match scikit-learn's."""
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        x = self.x[self.holdout]
        outputs = session.run(None, {"input": x})
        if hasattr(self.estimator, "classes_"):
            assert [output.name for output in session.get_outputs()] == ["label", "probabilities"]
            assert outputs[0].tolist() == self.estimator.predict(x).tolist()
            np.testing.assert_allclose(outputs[1], self.estimator.predict_proba(x), atol=1e-4)
        else:
            expected = self.estimator.predict(x)
            np.testing.assert_allclose(np.ravel(outputs[0]), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(("algorithm", "name", "fmt", "hyperparameters"), CASES)
def test_every_algorithm_trains_exports_and_matches_scikit_learn(
    make_dataset: Callable[[str, str], Dataset],
    tmp_path: Path,
    train: Callable[[list[str]], dict[str, Any]],
    algorithm: str,
    name: str,
    fmt: str,
    hyperparameters: dict[str, Any],
) -> None:
    dataset = make_dataset(name, fmt)
    output = (tmp_path / "store" / "models" / "demo" / "run-1").as_uri() + "/"
    result = train(train_args(dataset, algorithm, output, hyperparameters=hyperparameters))

    reference = Reference(dataset.frame, algorithm, hyperparameters, dataset.features)
    model = storage.read_bytes(result["modelUri"])
    reference.check_onnx(model)
    assert result["modelUri"] == output + "model.onnx"
    assert result["sha256"] == hashlib.sha256(model).hexdigest()
    assert result["metrics"] == pytest.approx(reference.metrics(), rel=1e-9, abs=1e-12)
    assert result["features"] == dataset.features
    n_features = len(dataset.features)
    assert result["signature"]["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, n_features]}
    ]


def test_signature_and_metadata_describe_the_model(
    breast_cancer_csv: Dataset, tmp_path: Path, train: Callable[[list[str]], dict[str, Any]]
) -> None:
    output = (tmp_path / "models" / "demo" / "run-1").as_uri() + "/"
    hyperparameters = {"n_estimators": 12, "max_depth": 4}
    result = train(
        train_args(
            breast_cancer_csv,
            "random_forest_classifier",
            output,
            "--seed",
            "3",
            hyperparameters=hyperparameters,
        )
    )

    assert result["signature"] == {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ],
    }
    metadata = json.loads(storage.read_bytes(result["metadataUri"]))
    assert result["metadataUri"] == output + "metadata.json"
    assert metadata["run"] == "run-1"
    assert metadata["model"] == "demo"
    assert metadata["algorithm"] == "random_forest_classifier"
    assert metadata["task"] == "classification"
    assert metadata["hyperparameters"] == {**hyperparameters, "random_state": 3}
    assert metadata["seed"] == 3
    assert metadata["validationFraction"] == 0.2
    assert metadata["split"] == {"trainRows": 455, "holdoutRows": 114, "stratified": True}
    assert metadata["dataset"] == {
        "uri": breast_cancer_csv.uri,
        "digest": digest(breast_cancer_csv),
    }
    assert metadata["features"] == breast_cancer_csv.features
    assert metadata["target"] == "target"
    assert metadata["classes"] == [0, 1]
    assert metadata["metrics"] == result["metrics"]
    assert set(metadata["metrics"]) == CLASSIFICATION_METRICS
    assert metadata["signature"] == result["signature"]
    assert metadata["sha256"] == result["sha256"]
    assert set(metadata["libraries"]) >= {"scikit-learn", "skl2onnx", "onnxruntime"}


def test_features_pick_columns_in_model_input_order(
    diabetes_parquet: Dataset, tmp_path: Path, train: Callable[[list[str]], dict[str, Any]]
) -> None:
    features = ["bmi", "s5", "age"]
    output = (tmp_path / "out").as_uri() + "/"
    result = train(
        train_args(diabetes_parquet, "ridge", output, "--features", json.dumps(features))
    )

    assert result["features"] == features
    assert result["signature"]["inputs"][0]["shape"] == [-1, 3]
    reference = Reference(diabetes_parquet.frame, "ridge", {}, features)
    reference.check_onnx(storage.read_bytes(result["modelUri"]))
    assert result["metrics"] == pytest.approx(reference.metrics(), rel=1e-9)


def test_text_labels_are_classes_and_bytes_labels(
    make_dataset: Callable[[str, str], Dataset],
    tmp_path: Path,
    train: Callable[[list[str]], dict[str, Any]],
) -> None:
    wine = make_dataset("wine", "parquet")
    names = pa.array(["barolo", "grignolino", "barbera"])
    table = wine.frame.set_column(
        wine.frame.column_names.index("target"), "target", pc.take(names, wine.frame["target"])
    )
    pq.write_table(table, wine.path)
    output = (tmp_path / "out").as_uri() + "/"
    result = train(
        train_args(wine, "logistic_regression", output, hyperparameters={"max_iter": 3000})
    )

    metadata = json.loads(storage.read_bytes(result["metadataUri"]))
    assert metadata["classes"] == ["barbera", "barolo", "grignolino"]
    assert result["signature"]["outputs"][0] == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [-1],
    }
    reference = Reference(table, "logistic_regression", {"max_iter": 3000}, wine.features)
    reference.check_onnx(storage.read_bytes(result["modelUri"]))


def test_same_seed_same_model_other_seed_other_split(
    wine_csv: Dataset, tmp_path: Path, train: Callable[[list[str]], dict[str, Any]]
) -> None:
    hyperparameters = {"n_estimators": 10}

    def run(seed: int, directory: str) -> dict[str, Any]:
        output = (tmp_path / directory).as_uri() + "/"
        return train(
            train_args(
                wine_csv,
                "gradient_boosting_classifier",
                output,
                "--seed",
                str(seed),
                hyperparameters=hyperparameters,
            )
        )

    first, second, other = run(5, "a"), run(5, "b"), run(6, "c")

    assert first["metrics"] == second["metrics"]
    first_model = storage.read_bytes(first["modelUri"])
    second_model = storage.read_bytes(second["modelUri"])
    x = Reference(
        wine_csv.frame, "gradient_boosting_classifier", hyperparameters, wine_csv.features
    ).x
    first_out = ort.InferenceSession(first_model).run(None, {"input": x})
    second_out = ort.InferenceSession(second_model).run(None, {"input": x})
    np.testing.assert_array_equal(first_out[0], second_out[0])
    np.testing.assert_array_equal(first_out[1], second_out[1])
    assert first["sha256"] == second["sha256"]
    other_metadata = json.loads(storage.read_bytes(other["metadataUri"]))
    assert other_metadata["seed"] == 6
    assert other["sha256"] != first["sha256"]


def test_output_to_s3(
    wine_parquet: Dataset, s3_bucket: str, train: Callable[[list[str]], dict[str, Any]]
) -> None:
    output = f"{s3_bucket}/models/wine/run-1/"
    result = train(
        train_args(
            wine_parquet, "random_forest_classifier", output, hyperparameters={"n_estimators": 10}
        )
    )

    assert result["modelUri"] == output + "model.onnx"
    assert result["metadataUri"] == output + "metadata.json"
    model = storage.read_bytes(result["modelUri"])
    assert hashlib.sha256(model).hexdigest() == result["sha256"]
    Reference(
        wine_parquet.frame, "random_forest_classifier", {"n_estimators": 10}, wine_parquet.features
    ).check_onnx(model)
    assert json.loads(storage.read_bytes(result["metadataUri"]))["sha256"] == result["sha256"]


# --- bad input: exit 1 with a reason and a message naming the problem ----------------------


def test_unknown_hyperparameter_fails_before_reading_data(
    tmp_path: Path, wine_csv: Dataset, train_fails: Callable[[list[str]], dict[str, Any]]
) -> None:
    argv = train_args(
        wine_csv,
        "random_forest_classifier",
        (tmp_path / "o").as_uri() + "/",
        hyperparameters={"n_estimatorz": 10},
    )
    argv[argv.index("--dataset-uri") + 1] = (tmp_path / "absent.csv").as_uri()

    failure = train_fails(argv)

    assert failure["reason"] == "InvalidHyperparameter"
    assert "unknown hyperparameter 'n_estimatorz' for RandomForestClassifier" in failure["message"]
    assert "n_estimators" in failure["message"].split("valid:")[1]


@pytest.mark.parametrize(
    ("algorithm", "hyperparameters", "named"),
    [
        ("random_forest_classifier", {"n_estimators": "ten"}, "'n_estimators'"),
        ("gradient_boosting_regressor", {"learning_rate": -1.0}, "'learning_rate'"),
        ("ridge", {"alpha": "strong"}, "'alpha'"),
        ("logistic_regression", {"penalty": "l3"}, "'penalty'"),
    ],
)
def test_ill_typed_hyperparameter(
    tmp_path: Path,
    wine_csv: Dataset,
    train_fails: Callable[[list[str]], dict[str, Any]],
    algorithm: str,
    hyperparameters: dict[str, Any],
    named: str,
) -> None:
    output = (tmp_path / "o").as_uri() + "/"
    failure = train_fails(train_args(wine_csv, algorithm, output, hyperparameters=hyperparameters))

    assert failure["reason"] == "InvalidHyperparameter"
    assert f"The {named} parameter of" in failure["message"]
    assert not (tmp_path / "o").exists()


def test_hyperparameters_must_be_an_object(
    tmp_path: Path, wine_csv: Dataset, train_fails: Callable[[list[str]], dict[str, Any]]
) -> None:
    argv = train_args(wine_csv, "ridge", (tmp_path / "o").as_uri() + "/")
    argv[argv.index("--hyperparameters") + 1] = "[1, 2]"

    failure = train_fails(argv)

    assert failure["reason"] == "InvalidHyperparameter"
    assert "JSON object" in failure["message"]


def test_digest_mismatch(
    tmp_path: Path, wine_csv: Dataset, train_fails: Callable[[list[str]], dict[str, Any]]
) -> None:
    argv = train_args(wine_csv, "ridge", (tmp_path / "o").as_uri() + "/")
    argv[argv.index("--dataset-digest") + 1] = "0" * 64

    failure = train_fails(argv)

    assert failure["reason"] == "DigestMismatch"
    assert failure["message"] == (
        f"dataset at {wine_csv.uri} has digest {digest(wine_csv)}, the run pinned {'0' * 64}: "
        "the data changed since it was profiled"
    )


def test_missing_feature(
    tmp_path: Path, wine_csv: Dataset, train_fails: Callable[[list[str]], dict[str, Any]]
) -> None:
    output = (tmp_path / "o").as_uri() + "/"
    failure = train_fails(
        train_args(wine_csv, "logistic_regression", output, "--features", '["alcohol", "vintage"]')
    )

    assert failure["reason"] == "InvalidData"
    assert "'vintage'" in failure["message"]
    assert "alcohol" in failure["message"]  # the columns the data set does have


def test_missing_target(
    tmp_path: Path, wine_csv: Dataset, train_fails: Callable[[list[str]], dict[str, Any]]
) -> None:
    argv = train_args(wine_csv, "logistic_regression", (tmp_path / "o").as_uri() + "/")
    argv[argv.index("--target") + 1] = "quality"

    failure = train_fails(argv)

    assert failure["reason"] == "InvalidData"
    assert "'quality'" in failure["message"]


def test_text_feature(
    tmp_path: Path,
    make_dataset: Callable[[str, str], Dataset],
    train_fails: Callable[[list[str]], dict[str, Any]],
) -> None:
    wine = make_dataset("wine", "csv")
    regions = pa.array(["piedmont", "tuscany"] * (wine.frame.num_rows // 2))
    pacsv.write_csv(wine.frame.append_column("region", regions), wine.path)

    failure = train_fails(
        train_args(wine, "random_forest_classifier", (tmp_path / "o").as_uri() + "/")
    )

    assert failure["reason"] == "InvalidData"
    assert "feature 'region' is string, not numeric" in failure["message"]


@pytest.mark.parametrize("column", ["alcohol", "target"])
def test_nulls_fail_and_are_counted(
    tmp_path: Path,
    make_dataset: Callable[[str, str], Dataset],
    train_fails: Callable[[list[str]], dict[str, Any]],
    column: str,
) -> None:
    wine = make_dataset("wine", "parquet")
    index = wine.frame.column_names.index(column)
    values = wine.frame.column(column).to_pylist()
    for row in (3, 50, 120):
        values[row] = None
    table = wine.frame.set_column(
        index, column, pa.array(values, wine.frame.schema.field(column).type)
    )
    pq.write_table(table, wine.path)

    failure = train_fails(train_args(wine, "logistic_regression", (tmp_path / "o").as_uri() + "/"))

    assert failure["reason"] == "InvalidData"
    assert failure["message"].startswith("3 of 178 rows have a null")
    assert f"'{column}'" in failure["message"]
    assert failure["rows"] == 3


def test_classifier_refuses_a_continuous_target(
    tmp_path: Path,
    make_dataset: Callable[[str, str], Dataset],
    train_fails: Callable[[list[str]], dict[str, Any]],
) -> None:
    diabetes = make_dataset("diabetes", "parquet")
    index = diabetes.frame.column_names.index("target")
    halved = pc.divide(diabetes.frame["target"], 2.0)  # 151 -> 75.5: not a class label
    pq.write_table(diabetes.frame.set_column(index, "target", halved), diabetes.path)

    output = (tmp_path / "o").as_uri() + "/"
    failure = train_fails(train_args(diabetes, "logistic_regression", output))

    assert failure["reason"] == "InvalidData"
    assert "non-integer values" in failure["message"]


# --- the rules behind the checks ------------------------------------------------------------


def test_roc_auc_is_omitted_when_the_holdout_lacks_a_class() -> None:
    classes = np.array([0, 1, 2])
    y_true = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])

    report = classification_metrics(y_true, np.array([0, 0, 1, 1]), probabilities, classes)

    assert "roc_auc" not in report.values
    assert report.omitted == {"roc_auc": "the holdout has no rows of class(es) 2"}
    assert report.values["log_loss"] == pytest.approx(
        metrics.log_loss(y_true, probabilities, labels=classes)
    )


def _classifier(labels: list[int], probabilities: list[list[float]]) -> ClassifierOutput:
    return ClassifierOutput(np.array(labels), np.array(probabilities, dtype=np.float64))


def test_agreement_tolerates_one_flip_at_a_near_tie_only() -> None:
    expected = _classifier([0, 1, 1], [[0.9, 0.1], [0.49996, 0.50004], [0.2, 0.8]])
    near_tie_flip = _classifier([0, 0, 1], [[0.9, 0.1], [0.50001, 0.49999], [0.2, 0.8]])
    real_flip = _classifier([1, 1, 1], [[0.9, 0.1], [0.49996, 0.50004], [0.2, 0.8]])
    far_probability = _classifier([0, 1, 1], [[0.9, 0.1], [0.49996, 0.50004], [0.3, 0.7]])

    assert disagreement(expected, near_tie_flip) == ""
    assert disagreement(expected, real_flip).startswith("1 labels differ")
    assert "on 1 rows, worst difference 0.1" in disagreement(expected, far_probability)
    two_ties = _classifier([1, 1], [[0.50002, 0.49998], [0.49999, 0.50001]])
    assert "2 more at near-ties (tolerated: 1)" in disagreement(
        two_ties, _classifier([0, 0], [[0.50002, 0.49998], [0.49999, 0.50001]])
    )


def test_agreement_of_regressors_is_relative_to_the_predictions_scale() -> None:
    expected = RegressorOutput(np.array([150.0, 300.0, -20.0]))

    assert disagreement(expected, RegressorOutput(np.array([150.01, 299.98, -20.0]))) == ""
    assert "on 1 rows" in disagreement(expected, RegressorOutput(np.array([150.0, 300.5, -20.0])))


def test_export_mismatch_reports_counts_and_the_worst_difference(
    diabetes_csv: Dataset,
) -> None:
    reference = Reference(diabetes_csv.frame, "linear_regression", {}, diabetes_csv.features)
    x = reference.x[reference.holdout]
    model = export(reference.estimator, x.shape[1])
    expected = predict(reference.estimator, x)
    assert isinstance(expected, RegressorOutput)
    check_agreement(model, expected, x)

    shifted = expected.values.copy()
    shifted[:2] += 5.0
    with pytest.raises(RuntimeFailure) as raised:
        check_agreement(model, RegressorOutput(shifted), x)

    assert raised.value.reason == "ExportMismatch"
    assert f"on the {len(x)} holdout rows" in raised.value.message
    assert "on 2 rows, worst difference 5" in raised.value.message


def test_result_drops_features_beyond_the_termination_message_limit() -> None:
    stored = StoredModel("s3://b/m/model.onnx", "a" * 64, "s3://b/m/metadata.json")
    signature = Signature(
        inputs=(TensorSpec("input", "FP32", (-1, 600)),),
        outputs=(TensorSpec("variable", "FP32", (-1, 1)),),
    )
    few = ModelRecord("r", "m", "ridge", {"r2": 0.5}, features=["a", "b"])
    many = ModelRecord("r", "m", "ridge", {"r2": 0.5}, features=[f"f{i:04d}" for i in range(600)])

    assert run_result(stored, few, signature)["features"] == ["a", "b"]
    assert "features" not in run_result(stored, many, signature)
    too_many_metrics = ModelRecord("r", "m", "custom", {f"m{i:04d}": 1.0 for i in range(400)})
    with pytest.raises(RuntimeFailure) as raised:
        run_result(stored, too_many_metrics, signature)
    assert raised.value.reason == "ResultTooLarge"
