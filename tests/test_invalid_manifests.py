"""Invalid manifests are refused by the CRD schema or CEL rules, naming the offending field."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from gyre_operator.api import RESOURCES
from gyre_schema import admission_errors, example

MODELS = {r.info.kind: r for r in RESOURCES}
DELETE = object()
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def mutate(obj: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """obj with each dotted path (a.b[2].c) set to its value, or removed for DELETE."""
    for path, value in changes.items():
        keys: list[str | int] = [int(i) if i else k for k, i in _STEP.findall(path)]
        node: Any = obj
        for key in keys[:-1]:
            if isinstance(key, str) and key not in node:
                node[key] = {}
            node = node[key]
        if value is DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return obj


# (id, kind, changes, the field the error must name)
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("dataset-no-source", "Dataset", {"spec.source": DELETE}, "spec.source"),
    ("dataset-bad-scheme", "Dataset", {"spec.source.uri": "ftp://host/x.csv"}, "spec.source.uri"),
    ("dataset-unknown-format", "Dataset", {"spec.format": "xlsx"}, "spec.format"),
    ("dataset-feature-type", "Dataset", {"spec.schema.features[0].type": "text"}, "type"),
    ("dataset-no-features", "Dataset", {"spec.schema.features": []}, "spec.schema.features"),
    (
        "dataset-duplicate-feature",
        "Dataset",
        {"spec.schema.features[1].name": "alcohol"},
        "spec.schema.features",
    ),
    ("dataset-target-is-feature", "Dataset", {"spec.schema.target": "alcohol"}, "target"),
    (
        "dataset-null-fraction",
        "Dataset",
        {"spec.validation.maxNullFraction": 1.5},
        "maxNullFraction",
    ),
    ("dataset-negative-rows", "Dataset", {"spec.validation.minRows": -1}, "minRows"),
    ("dataset-rows-type", "Dataset", {"spec.validation.minRows": "many"}, "minRows"),
    ("dataset-refresh", "Dataset", {"spec.refreshInterval": "hourly"}, "refreshInterval"),
    ("run-no-dataset", "TrainingRun", {"spec.datasetRef": DELETE}, "spec.datasetRef"),
    ("run-model-name", "TrainingRun", {"spec.model": "Wine_Model"}, "spec.model"),
    ("run-algorithm", "TrainingRun", {"spec.trainer.algorithm": "xgboost"}, "algorithm"),
    (
        "run-two-trainers",
        "TrainingRun",
        {"spec.trainer.image": "example/trainer:1"},
        "spec.trainer",
    ),
    ("run-no-trainer", "TrainingRun", {"spec.trainer.algorithm": DELETE}, "spec.trainer"),
    ("run-gate-unbounded", "TrainingRun", {"spec.gates[0].min": DELETE}, "spec.gates[0]"),
    ("run-duplicate-gate", "TrainingRun", {"spec.gates[1].metric": "accuracy"}, "spec.gates"),
    ("run-split", "TrainingRun", {"spec.trainer.validationFraction": 1.0}, "validationFraction"),
    ("run-deadline", "TrainingRun", {"spec.activeDeadlineSeconds": 0}, "activeDeadlineSeconds"),
    ("run-digest", "TrainingRun", {"spec.datasetRef.digest": "abc"}, "spec.datasetRef.digest"),
    ("mv-version-zero", "ModelVersion", {"spec.version": 0}, "spec.version"),
    ("mv-digest", "ModelVersion", {"spec.artifact.sha256": "XYZ"}, "spec.artifact.sha256"),
    ("mv-format", "ModelVersion", {"spec.artifact.format": "pickle"}, "spec.artifact.format"),
    ("mv-no-artifact", "ModelVersion", {"spec.artifact": DELETE}, "spec.artifact"),
    (
        "isvc-both-version-and-track",
        "InferenceService",
        {"spec.modelVersion": 3},
        "spec",
    ),
    ("isvc-neither", "InferenceService", {"spec.track": DELETE}, "spec"),
    ("isvc-track", "InferenceService", {"spec.track": "newest"}, "spec.track"),
    (
        "isvc-weight-over-100",
        "InferenceService",
        {"spec.rollout.steps[1].weight": 150},
        "spec.rollout.steps[1].weight",
    ),
    (
        "isvc-weight-zero",
        "InferenceService",
        {"spec.rollout.steps[0].weight": 0},
        "spec.rollout.steps[0].weight",
    ),
    (
        "isvc-weights-not-increasing",
        "InferenceService",
        {"spec.rollout.steps": [{"weight": 50}, {"weight": 50}]},
        "spec.rollout.steps",
    ),
    (
        "isvc-weights-decreasing",
        "InferenceService",
        {"spec.rollout.steps": [{"weight": 10}, {"weight": 60}, {"weight": 30}]},
        "spec.rollout.steps",
    ),
    ("isvc-pause", "InferenceService", {"spec.rollout.steps[0].pause": "2 minutes"}, "pause"),
    (
        "isvc-error-rate",
        "InferenceService",
        {"spec.rollout.analysis.maxErrorRate": 2},
        "maxErrorRate",
    ),
    ("isvc-replicas", "InferenceService", {"spec.runtime.replicas": 0}, "spec.runtime.replicas"),
    ("isvc-replicas-type", "InferenceService", {"spec.runtime.replicas": "two"}, "replicas"),
    ("isvc-routing", "InferenceService", {"spec.trafficRouting.type": "istio"}, "type"),
    (
        "isvc-gateway-unconfigured",
        "InferenceService",
        {"spec.trafficRouting.type": "gatewayAPI"},
        "spec.trafficRouting",
    ),
    ("dm-both-schedules", "DriftMonitor", {"spec.schedule": "0 * * * *"}, "spec"),
    ("dm-no-schedule", "DriftMonitor", {"spec.interval": DELETE}, "spec"),
    ("dm-no-target", "DriftMonitor", {"spec.inferenceServiceRef": DELETE}, "inferenceServiceRef"),
    ("dm-share", "DriftMonitor", {"spec.policy.driftedFeatureShare": 0}, "driftedFeatureShare"),
    ("dm-p-value", "DriftMonitor", {"spec.methods.numeric.ks.pValue": 1.5}, "pValue"),
    ("dm-correction", "DriftMonitor", {"spec.methods.numeric.ks.correction": "holm"}, "correction"),
    ("dm-window-both", "DriftMonitor", {"spec.window.duration": "1h"}, "spec.window"),
    ("dm-min-samples", "DriftMonitor", {"spec.minSamples": 0}, "spec.minSamples"),
    ("dm-runs-per-day", "DriftMonitor", {"spec.retrain.maxRunsPerDay": 0}, "maxRunsPerDay"),
]


@pytest.mark.parametrize(
    ("kind", "changes", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_manifest_is_refused_naming_the_field(
    kind: str, changes: dict[str, Any], field: str
) -> None:
    obj = mutate(example(kind), changes)
    errors = admission_errors(obj)
    assert errors, "the CRD admitted an invalid manifest"
    assert any(field in str(e) for e in errors), [str(e) for e in errors]
    with pytest.raises(ValidationError):
        MODELS[kind].model_validate(obj)


def test_there_are_at_least_25_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize(
    "changes",
    [
        {"spec.artifact.uri": "s3://ml-models/wine/101/model.onnx"},
        {"spec.artifact.sha256": "0" * 64},
        {"spec.version": 101},
        {"spec.metrics.accuracy": 0.99},
    ],
    ids=["artifact-uri", "artifact-digest", "version", "metrics"],
)
def test_modelversion_spec_is_immutable(changes: dict[str, Any]) -> None:
    old = example("ModelVersion")
    new = mutate(example("ModelVersion"), changes)
    errors = admission_errors(new, old)
    assert any(e.field == "spec" and "immutable" in e.message for e in errors), [
        str(e) for e in errors
    ]


def test_unchanged_modelversion_update_is_admitted() -> None:
    old = example("ModelVersion")
    new = mutate(example("ModelVersion"), {"metadata.labels": {"team": "ml"}})
    assert admission_errors(new, old) == []


def test_trainingrun_spec_is_immutable() -> None:
    old = example("TrainingRun")
    new = mutate(example("TrainingRun"), {"spec.trainer.seed": 8})
    assert any("immutable" in str(e) for e in admission_errors(new, old))
