"""ONNX export of a fitted estimator, and the check that onnxruntime agrees with it.

The exported graph takes one FP32 tensor `input` of shape [batch, n_features]. Classifiers
output `label` and `probabilities` as plain tensors (no ZipMap), regressors `variable`
of shape [batch, 1].

Agreement rule, on the holdout rows (both sides fed the same float32 features):
- probabilities: every one within PROBABILITY_TOLERANCE (absolute) of scikit-learn's;
- labels: equal, except where scikit-learn's two highest probabilities are within NEAR_TIE,
  where float32 arithmetic may legitimately pick the other class; such near-tie flips are
  tolerated on at most MAX_TIE_FLIP_FRACTION of the rows (and at least one row);
- regression values: within REGRESSION_TOLERANCE times the largest |prediction| (at least 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from skl2onnx import to_onnx  # type: ignore[import-untyped]
from skl2onnx.common.data_types import FloatTensorType  # type: ignore[import-untyped]

from gyre_runtime.model_artifact import load_session
from gyre_runtime.result import RuntimeFailure

INPUT_NAME = "input"
# Opset 17 / ai.onnx.ml 3: what every onnxruntime since 1.11 (and Triton, KServe) loads, so
# a model serves on older runtimes than the one that trained it.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
PROBABILITY_TOLERANCE = 1e-4
NEAR_TIE = 1e-4
MAX_TIE_FLIP_FRACTION = 0.001
REGRESSION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ClassifierOutput:
    """A classifier's predicted labels and per-class probabilities."""

    labels: NDArray[Any]
    probabilities: NDArray[np.floating]


@dataclass(frozen=True)
class RegressorOutput:
    """A regressor's predicted values."""

    values: NDArray[np.floating]


Output = ClassifierOutput | RegressorOutput


def predict(estimator: Any, features: NDArray[np.float32]) -> Output:
    """scikit-learn's outputs for the rows of a feature matrix."""
    if hasattr(estimator, "predict_proba"):
        return ClassifierOutput(
            labels=np.asarray(estimator.predict(features)),
            probabilities=np.asarray(estimator.predict_proba(features)),
        )
    return RegressorOutput(values=np.asarray(estimator.predict(features), dtype=np.float64))


def export(estimator: Any, n_features: int) -> bytes:
    """The serialized ONNX model of a fitted estimator."""
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    try:
        model = to_onnx(
            estimator,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            options=options,
            target_opset=TARGET_OPSET,
        )
    # skl2onnx raises many error types for what it cannot convert.
    except Exception as error:
        raise RuntimeFailure(
            "ExportFailed", f"skl2onnx cannot convert {type(estimator).__name__}: {error}"
        ) from error
    data: bytes = model.SerializeToString()
    return data


def check_agreement(model: bytes, expected: Output, features: NDArray[np.float32]) -> None:
    """Run the ONNX model with onnxruntime; RuntimeFailure("ExportMismatch") if it disagrees."""
    outputs = load_session(model).run(None, {INPUT_NAME: features})
    actual: Output = (
        ClassifierOutput(labels=np.asarray(outputs[0]), probabilities=outputs[1])
        if isinstance(expected, ClassifierOutput)
        else RegressorOutput(values=np.ravel(outputs[0]))
    )
    problem = disagreement(expected, actual)
    if problem:
        raise RuntimeFailure(
            "ExportMismatch",
            f"onnxruntime disagrees with scikit-learn on the {len(features)} holdout rows: "
            f"{problem}",
        )


def disagreement(expected: Output, actual: Output) -> str:
    """How ONNX outputs break the agreement rule (see the module); "" when they keep it."""
    if isinstance(expected, ClassifierOutput) and isinstance(actual, ClassifierOutput):
        return _classifier_disagreement(expected, actual)
    if isinstance(expected, RegressorOutput) and isinstance(actual, RegressorOutput):
        return _regressor_disagreement(expected, actual)
    raise TypeError("expected and actual outputs must be of the same kind")


def _classifier_disagreement(expected: ClassifierOutput, actual: ClassifierOutput) -> str:
    rows = len(expected.labels)
    flipped = expected.labels != actual.labels
    ranked = np.sort(expected.probabilities, axis=1)
    near_tie = ranked[:, -1] - ranked[:, -2] <= NEAR_TIE
    real_flips = int(np.sum(flipped & ~near_tie))
    tie_flips = int(np.sum(flipped & near_tie))
    allowed_tie_flips = max(1, math.floor(MAX_TIE_FLIP_FRACTION * rows))
    difference = np.abs(expected.probabilities - actual.probabilities.astype(np.float64))
    far_rows = int(np.sum(difference.max(axis=1) > PROBABILITY_TOLERANCE))
    if real_flips == 0 and tie_flips <= allowed_tie_flips and far_rows == 0:
        return ""
    return (
        f"{real_flips} labels differ, {tie_flips} more at near-ties "
        f"(tolerated: {allowed_tie_flips}); probabilities differ by more than "
        f"{PROBABILITY_TOLERANCE:g} on {far_rows} rows, worst difference "
        f"{float(difference.max()):.3g}"
    )


def _regressor_disagreement(expected: RegressorOutput, actual: RegressorOutput) -> str:
    scale = max(1.0, float(np.abs(expected.values).max(initial=0.0)))
    tolerance = REGRESSION_TOLERANCE * scale
    difference = np.abs(expected.values - actual.values.astype(np.float64))
    far_rows = int(np.sum(difference > tolerance))
    if far_rows == 0:
        return ""
    return (
        f"values differ by more than {tolerance:.3g} on {far_rows} rows, worst difference "
        f"{float(difference.max()):.3g}"
    )
