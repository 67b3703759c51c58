"""Holdout metrics of the built-in trainer, computed with scikit-learn.

Every reported metric is a finite float. A metric the holdout cannot define (roc_auc when
a class is missing from it) is left out and the reason recorded, never reported as NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sklearn import metrics  # type: ignore[import-untyped]


@dataclass(frozen=True)
class MetricReport:
    """Metric values by name, and the metrics left out with the reason why."""

    values: dict[str, float]
    omitted: dict[str, str] = field(default_factory=dict)


def classification_metrics(
    y_true: NDArray[np.generic],
    predicted: NDArray[np.generic],
    probabilities: NDArray[np.floating],
    classes: NDArray[np.generic],
) -> MetricReport:
    """Accuracy, balanced accuracy, macro precision/recall/F1, ROC AUC and log loss.

    `probabilities` has one column per entry of `classes` (the estimator's `classes_`);
    with two classes, the second is the positive one.
    """
    values = {
        "accuracy": metrics.accuracy_score(y_true, predicted),
        "balanced_accuracy": metrics.balanced_accuracy_score(y_true, predicted),
        # A class the model never predicts has no precision: count it as 0, not NaN.
        "precision_macro": metrics.precision_score(
            y_true, predicted, average="macro", zero_division=0.0
        ),
        "recall_macro": metrics.recall_score(y_true, predicted, average="macro", zero_division=0.0),
        "f1_macro": metrics.f1_score(y_true, predicted, average="macro", zero_division=0.0),
    }
    omitted: dict[str, str] = {}
    unseen = np.setdiff1d(y_true, classes)
    missing = np.setdiff1d(classes, y_true)
    if unseen.size:
        # A class whose only rows fell in the holdout has no probability column.
        reason = f"the holdout has class(es) {_names(unseen)} that no training row has"
        omitted.update(log_loss=reason, roc_auc=reason)
        return _finite(values, omitted)
    values["log_loss"] = metrics.log_loss(y_true, probabilities, labels=classes)
    if missing.size:
        omitted["roc_auc"] = f"the holdout has no rows of class(es) {_names(missing)}"
    else:
        values["roc_auc"] = _roc_auc(y_true, probabilities, classes)
    return _finite(values, omitted)


def _names(classes: NDArray[np.generic]) -> str:
    return ", ".join(map(str, classes.tolist()))


def _roc_auc(
    y_true: NDArray[np.generic], probabilities: NDArray[np.floating], classes: NDArray[np.generic]
) -> float:
    if len(classes) == 2:
        return float(metrics.roc_auc_score(y_true == classes[1], probabilities[:, 1]))
    return float(
        metrics.roc_auc_score(
            y_true, probabilities, multi_class="ovr", average="macro", labels=classes
        )
    )


def regression_metrics(
    y_true: NDArray[np.floating], predicted: NDArray[np.floating]
) -> MetricReport:
    """RMSE, MAE and R² (R² is undefined, and left out, when the holdout target is constant)."""
    values = {
        "rmse": metrics.root_mean_squared_error(y_true, predicted),
        "mae": metrics.mean_absolute_error(y_true, predicted),
    }
    omitted: dict[str, str] = {}
    if len(y_true) < 2 or np.all(y_true == y_true[0]):
        omitted["r2"] = "the holdout target is constant"
    else:
        values["r2"] = metrics.r2_score(y_true, predicted)
    return _finite(values, omitted)


def _finite(values: dict[str, float], omitted: dict[str, str]) -> MetricReport:
    kept = {name: float(value) for name, value in values.items() if math.isfinite(value)}
    for name in values.keys() - kept.keys():
        omitted[name] = "not finite on this holdout"
    return MetricReport(values=kept, omitted=omitted)
