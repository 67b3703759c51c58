"""`gyre-runtime train`: the built-in trainer.

Loads the pinned data set version, fits a scikit-learn estimator on a seeded split,
measures it on the holdout, exports it to ONNX, checks that onnxruntime agrees with
scikit-learn on the holdout, and stores model.onnx and metadata.json under --output-uri.
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass
from typing import Any

from gyre_runtime.model_artifact import (
    DatasetVersion,
    ModelRecord,
    inspect_model,
    parse_features,
    store_model,
)
from gyre_runtime.result import RuntimeFailure
from gyre_runtime.tables import FORMATS, load_table
from gyre_runtime.training.algorithms import ALGORITHMS, Algorithm, ConfiguredEstimator, configure
from gyre_runtime.training.data import Split, TrainingData, holdout_split, prepare
from gyre_runtime.training.export import ClassifierOutput, Output, check_agreement, export, predict
from gyre_runtime.training.metrics import (
    MetricReport,
    classification_metrics,
    regression_metrics,
)

LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy")
MAX_SEED = 2**32 - 1  # numpy's RandomState, behind scikit-learn's random_state, takes no more


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments the operator's Job builder passes to `gyre-runtime train`."""
    parser.add_argument("--run", required=True, help="the TrainingRun's name")
    parser.add_argument("--model", required=True, help="the model to register under")
    parser.add_argument("--algorithm", required=True, choices=sorted(ALGORITHMS))
    parser.add_argument("--dataset-uri", required=True, help="the data file or prefix (ending /)")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    parser.add_argument("--dataset-digest", required=True, help="the pinned content digest")
    parser.add_argument("--target", required=True, help="the column to predict")
    parser.add_argument("--features", help="JSON list of feature columns in model input order")
    parser.add_argument("--hyperparameters", default="{}", help="JSON object of estimator params")
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-uri", required=True, help="directory URI for the model files")


@dataclass(frozen=True)
class TrainingRequest:
    """A checked `train` invocation."""

    run: str
    model: str
    algorithm: Algorithm
    dataset: DatasetVersion
    fmt: str
    target: str
    features: list[str] | None
    hyperparameters: dict[str, Any]
    validation_fraction: float
    seed: int
    output_uri: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainingRequest:
        """Check the arguments' values; RuntimeFailure for a bad one."""
        features = parse_features(args.features)
        if features is not None and args.target in features:
            raise RuntimeFailure(
                "InvalidArgument", f"the target {args.target!r} is also listed as a feature"
            )
        if not 0.0 < args.validation_fraction < 1.0:
            raise RuntimeFailure("InvalidArgument", "--validation-fraction must be in (0, 1)")
        if not 0 <= args.seed <= MAX_SEED:
            raise RuntimeFailure("InvalidArgument", f"--seed must be in [0, {MAX_SEED}]")
        return cls(
            run=args.run,
            model=args.model,
            algorithm=ALGORITHMS[args.algorithm],
            dataset=DatasetVersion(uri=args.dataset_uri, digest=args.dataset_digest.lower()),
            fmt=args.fmt,
            target=args.target,
            features=features,
            hyperparameters=_hyperparameters(args.hyperparameters),
            validation_fraction=args.validation_fraction,
            seed=args.seed,
            output_uri=args.output_uri,
        )


def _hyperparameters(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise RuntimeFailure(
            "InvalidHyperparameter", f"--hyperparameters is not JSON: {error}"
        ) from error
    if not isinstance(value, dict):
        raise RuntimeFailure(
            "InvalidHyperparameter", f"--hyperparameters must be a JSON object, not {text}"
        )
    return value


@dataclass(frozen=True)
class FittedModel:
    """A fitted estimator with its holdout outputs, metrics and fit warnings."""

    configured: ConfiguredEstimator
    holdout: Output
    report: MetricReport
    warnings: list[str]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train, evaluate, export and store a model; return the result for the operator."""
    request = TrainingRequest.from_args(args)
    configured = configure(request.algorithm, request.hyperparameters, request.seed)
    data = _load(request)
    split = holdout_split(data.y, request.validation_fraction, request.seed, request.algorithm.task)
    fitted = _fit(configured, data, split)
    model = export(configured.estimator, len(data.features))
    check_agreement(model, fitted.holdout, data.x[split.holdout])
    record = _record(request, data, split, fitted)
    return store_model(model, inspect_model(model), request.output_uri, record)


def _load(request: TrainingRequest) -> TrainingData:
    loaded = load_table(request.dataset.uri, request.fmt)
    if loaded.digest != request.dataset.digest:
        raise RuntimeFailure(
            "DigestMismatch",
            f"dataset at {request.dataset.uri} has digest {loaded.digest}, the run pinned "
            f"{request.dataset.digest}: the data changed since it was profiled",
            digest=loaded.digest,
        )
    return prepare(loaded.table, request.target, request.features, request.algorithm.task)


def _fit(configured: ConfiguredEstimator, data: TrainingData, split: Split) -> FittedModel:
    estimator = configured.estimator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.fit(data.x[split.train], data.y[split.train])
        # Parameter combinations only checked inside fit (an unsupported penalty for a
        # solver, say) surface here as ValueError.
        except ValueError as error:
            raise RuntimeFailure(
                "TrainingFailed",
                f"{type(estimator).__name__} with {json.dumps(configured.params)} "
                f"failed to fit: {error}",
            ) from error
    holdout = predict(estimator, data.x[split.holdout])
    return FittedModel(
        configured=configured,
        holdout=holdout,
        report=_evaluate(holdout, data.y[split.holdout], estimator),
        warnings=sorted({str(warning.message) for warning in caught}),
    )


def _evaluate(holdout: Output, y_true: Any, estimator: Any) -> MetricReport:
    if isinstance(holdout, ClassifierOutput):
        return classification_metrics(
            y_true, holdout.labels, holdout.probabilities, estimator.classes_
        )
    return regression_metrics(y_true, holdout.values)


def _record(
    request: TrainingRequest, data: TrainingData, split: Split, fitted: FittedModel
) -> ModelRecord:
    details: dict[str, Any] = {
        "task": str(request.algorithm.task),
        "estimator": type(fitted.configured.estimator).__name__,
        "hyperparameters": fitted.configured.params,
        "seed": request.seed,
        "validationFraction": request.validation_fraction,
        "split": split.to_json(),
        "target": request.target,
        "metricsOmitted": fitted.report.omitted,
        "trainingWarnings": fitted.warnings,
    }
    if isinstance(fitted.holdout, ClassifierOutput):
        details["classes"] = fitted.configured.estimator.classes_.tolist()
    return ModelRecord(
        run=request.run,
        model=request.model,
        algorithm=request.algorithm.name,
        metrics=fitted.report.values,
        features=data.features,
        dataset=request.dataset,
        details=details,
        libraries=LIBRARIES,
    )
