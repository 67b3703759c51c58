"""The Gyre API (group gyre.dev, version v1alpha1): the single source of truth for the CRDs."""

from gyre_operator.api.common import (
    API_VERSION,
    GROUP,
    VERSION,
    Condition,
    ConditionStatus,
    get_condition,
    is_condition_true,
    parse_duration,
    set_condition,
    to_wire,
)
from gyre_operator.api.dataset import Dataset, DatasetSpec, DatasetStatus
from gyre_operator.api.drift import DriftMonitor, DriftMonitorSpec, DriftMonitorStatus
from gyre_operator.api.inference import (
    InferenceService,
    InferenceServiceSpec,
    InferenceServiceStatus,
)
from gyre_operator.api.modelversion import ModelVersion, ModelVersionSpec, ModelVersionStatus
from gyre_operator.api.resource import GyreResource, KindInfo
from gyre_operator.api.training import TrainingRun, TrainingRunSpec, TrainingRunStatus

RESOURCES: tuple[type[GyreResource], ...] = (
    Dataset,
    TrainingRun,
    ModelVersion,
    InferenceService,
    DriftMonitor,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "RESOURCES",
    "VERSION",
    "Condition",
    "ConditionStatus",
    "Dataset",
    "DatasetSpec",
    "DatasetStatus",
    "DriftMonitor",
    "DriftMonitorSpec",
    "DriftMonitorStatus",
    "GyreResource",
    "InferenceService",
    "InferenceServiceSpec",
    "InferenceServiceStatus",
    "KindInfo",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "TrainingRun",
    "TrainingRunSpec",
    "TrainingRunStatus",
    "get_condition",
    "is_condition_true",
    "parse_duration",
    "set_condition",
    "to_wire",
]
