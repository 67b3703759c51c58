"""The operator and the runtimes agree on what crosses the pod boundary.

The two packages never import each other, so each side states the contract once; these
tests hold the two statements together.
"""

from __future__ import annotations

import numpy as np
import pytest

from gyre_operator.api.training import Algorithm
from gyre_operator.builders.jobs import env_name
from gyre_operator.builders.trainingrun import (
    CLASSIFICATION_METRICS,
    CLASSIFIERS,
    REGRESSION_METRICS,
)
from gyre_runtime.cli import SUBCOMMANDS
from gyre_runtime.storage import local_path
from gyre_runtime.training.algorithms import ALGORITHMS, Task
from gyre_runtime.training.metrics import classification_metrics, regression_metrics


def test_every_algorithm_of_the_api_is_built_in_with_the_same_task() -> None:
    runtime = {a.name: a.task for a in ALGORITHMS.values()}
    assert set(runtime) == {a.value for a in Algorithm}
    classifiers = {name for name, task in runtime.items() if task is Task.CLASSIFICATION}
    assert classifiers == {a.value for a in CLASSIFIERS}


def test_the_operator_knows_every_metric_the_built_in_trainer_reports() -> None:
    y = np.array([0, 1, 0, 1])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    report = classification_metrics(y, np.array([0, 1, 0, 1]), probabilities, np.array([0, 1]))
    assert set(report.values) | set(report.omitted) == set(CLASSIFICATION_METRICS)
    report = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.1, 1.9, 3.2]))
    assert set(report.values) | set(report.omitted) == set(REGRESSION_METRICS)


def test_the_runtime_has_every_subcommand_the_jobs_run() -> None:
    assert {"profile", "train", "publish", "verify", "fetch"} <= set(SUBCOMMANDS)


def test_pvc_mount_variables_are_named_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    claim = "team-data.v2"
    monkeypatch.setenv(f"GYRE_PVC_{env_name(claim)}", "/mounted/here")
    assert str(local_path(f"pvc://{claim}/wine.csv")) == "/mounted/here/wine.csv"
