"""--artifact-secret: every pod that reads or writes the artifact store gets the Secret."""

from __future__ import annotations

import dataclasses
from typing import Any

from builders_fixtures import (
    CONFIG,
    DIGEST_A,
    NOW,
    dataset_model,
    dataset_obj,
    modelversion_obj,
    ready_dataset_status,
    trainingrun_obj,
)

from gyre_operator.builders.dataset import DatasetObserved, build_dataset
from gyre_operator.builders.modelversion import ModelVersionObserved, build_modelversion
from gyre_operator.builders.trainingrun import TrainingObserved, build_trainingrun

WITH_SECRET = dataclasses.replace(CONFIG, artifact_secret="artifacts")
CUSTOM = {"image": "me/trainer:2", "command": ["python", "train.py"]}


def env_from(job: dict[str, Any], name: str) -> list[str]:
    pod = job["spec"]["template"]["spec"]
    (container,) = [
        c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == name
    ]
    return [source["secretRef"]["name"] for source in container.get("envFrom", [])]


def test_config_orders_the_artifact_secret_before_the_datas() -> None:
    assert WITH_SECRET.secrets("data", None) == ("artifacts", "data")
    assert CONFIG.secrets(None) == ()


def test_profile_gets_the_artifact_secret_and_then_the_datas() -> None:
    obj = dataset_obj("iris", source={"uri": "s3://data/iris.csv", "secretRef": {"name": "data"}})
    (job,) = build_dataset(obj, DatasetObserved(), WITH_SECRET, NOW).children
    assert env_from(job, "profile") == ["artifacts", "data"]


def test_training_pods_get_what_each_reads_or_writes() -> None:
    dataset = dataset_model(
        status=ready_dataset_status(DIGEST_A),
        source={"uri": "s3://data/iris.csv", "secretRef": {"name": "data"}},
    )
    observed = TrainingObserved(dataset=dataset)
    (builtin,) = build_trainingrun(trainingrun_obj(), observed, WITH_SECRET, NOW).children
    assert env_from(builtin, "train") == ["artifacts", "data"]
    custom = trainingrun_obj(trainer=CUSTOM)
    (job,) = build_trainingrun(custom, observed, WITH_SECRET, NOW).children
    assert env_from(job, "fetch") == ["data"]
    assert env_from(job, "trainer") == []
    assert env_from(job, "publish") == ["artifacts"]
    assert job["metadata"]["annotations"]["gyre.dev/dataset-digest"] == DIGEST_A


def test_verification_gets_the_artifact_secret() -> None:
    (job,) = build_modelversion(
        modelversion_obj(), ModelVersionObserved(), WITH_SECRET, NOW
    ).children
    assert env_from(job, "verify") == ["artifacts"]
