"""The built-in trainer's algorithms and the checking of their hyperparameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sklearn.base import BaseEstimator  # type: ignore[import-untyped]
from sklearn.ensemble import (  # type: ignore[import-untyped]
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import (  # type: ignore[import-untyped]
    LinearRegression,
    LogisticRegression,
    Ridge,
)

from gyre_runtime.result import RuntimeFailure


class Task(StrEnum):
    """What a model predicts: a class or a number."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


@dataclass(frozen=True)
class Algorithm:
    """A built-in algorithm: its name in a TrainingRun, its task and its estimator."""

    name: str
    task: Task
    estimator: type[Any]


ALGORITHMS: dict[str, Algorithm] = {
    algorithm.name: algorithm
    for algorithm in (
        Algorithm("logistic_regression", Task.CLASSIFICATION, LogisticRegression),
        Algorithm("random_forest_classifier", Task.CLASSIFICATION, RandomForestClassifier),
        Algorithm("gradient_boosting_classifier", Task.CLASSIFICATION, GradientBoostingClassifier),
        Algorithm("linear_regression", Task.REGRESSION, LinearRegression),
        Algorithm("ridge", Task.REGRESSION, Ridge),
        Algorithm("random_forest_regressor", Task.REGRESSION, RandomForestRegressor),
        Algorithm("gradient_boosting_regressor", Task.REGRESSION, GradientBoostingRegressor),
    )
}


@dataclass(frozen=True)
class ConfiguredEstimator:
    """An unfitted estimator and the parameters set on it (the seed and the user's)."""

    estimator: Any
    params: dict[str, Any]


def configure(
    algorithm: Algorithm, hyperparameters: Mapping[str, Any], seed: int
) -> ConfiguredEstimator:
    """Build the algorithm's estimator, checking every hyperparameter before any fitting.

    The seed goes to `random_state` where the estimator has one, unless the hyperparameters
    set it. An unknown name or a value scikit-learn's parameter constraints refuse raises
    RuntimeFailure("InvalidHyperparameter").
    """
    estimator_class = algorithm.estimator
    valid = sorted(estimator_class().get_params(deep=False))
    for name in hyperparameters:
        if name not in valid:
            raise RuntimeFailure(
                "InvalidHyperparameter",
                f"unknown hyperparameter {name!r} for {estimator_class.__name__}; "
                f"valid: {', '.join(valid)}",
            )
    seeded = {"random_state": seed} if "random_state" in valid else {}
    params = {**seeded, **hyperparameters}
    estimator = estimator_class(**params)
    _check_constraints(estimator)
    return ConfiguredEstimator(estimator=estimator, params=params)


def _check_constraints(estimator: BaseEstimator) -> None:
    # scikit-learn checks its declared parameter constraints at the start of fit(); calling
    # that same check here reports a bad value before any data is loaded or fitted, in
    # scikit-learn's own words ("The 'n_estimators' parameter of ... must be ...").
    try:
        estimator._validate_params()
    except (ValueError, TypeError) as error:
        raise RuntimeFailure("InvalidHyperparameter", str(error)) from error
