"""The operator's Prometheus metrics (prefix gyre_)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RECONCILE_DURATION = Histogram(
    "gyre_reconcile_duration_seconds",
    "Time spent in one reconcile of a Gyre object.",
    ["kind"],
)
RECONCILE_ERRORS = Counter(
    "gyre_reconcile_errors_total",
    "Reconciles that ended in an error.",
    ["kind", "reason"],
)
TRAINING_DURATION = Histogram(
    "gyre_training_duration_seconds",
    "Time from a TrainingRun's start to its end.",
    ["result"],
    buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800),
)
TRAINING_RUNS = Counter(
    "gyre_training_runs_total",
    "TrainingRuns that ended, by result and reason.",
    ["result", "reason"],
)

CANARY_WEIGHT = Gauge(
    "gyre_canary_weight",
    "Percent of an InferenceService's traffic its canary gets.",
    ["namespace", "name"],
)
ANALYSIS_OUTCOMES = Counter(
    "gyre_canary_analysis_total",
    "Canary analysis intervals, by outcome (Pass, Fail, Wait, Advance, Promote, Rollback).",
    ["namespace", "name", "outcome"],
)
ROLLOUTS = Counter(
    "gyre_rollouts_total",
    "Canary rollouts that ended, by result (Promoted, RolledBack).",
    ["result"],
)

DRIFT_SCORE = Gauge(
    "gyre_drift_score",
    "A feature's score in a DriftMonitor's latest check, by method (psi, ks and chi_squared "
    "p-values, jensen_shannon, wasserstein, and the test statistics).",
    ["namespace", "monitor", "feature", "method"],
)
DRIFTED_FEATURES = Gauge(
    "gyre_drift_drifted_features",
    "Features that drifted in a DriftMonitor's latest check.",
    ["namespace", "monitor"],
)
DRIFT_CHECKS = Counter(
    "gyre_drift_checks_total",
    "Drift checks recorded, by verdict (NoDrift, Drift, InsufficientData).",
    ["namespace", "monitor", "verdict"],
)
DRIFT_CHECK_DURATION = Histogram(
    "gyre_drift_check_duration_seconds",
    "Time a drift check Job took, from start to completion.",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900),
)
RETRAIN_TRIGGERS = Counter(
    "gyre_drift_retrain_triggers_total",
    "TrainingRuns a DriftMonitor created on drift.",
    ["namespace", "monitor"],
)


class ResourcesByPhase(Collector):
    """gyre_resources: how many objects of each kind are in each phase, read at scrape time."""

    def __init__(self, objects: Callable[[], Iterable[tuple[str, dict[str, Any]]]]) -> None:
        self._objects = objects

    def collect(self) -> Iterator[Metric]:
        """One gauge sample per (kind, phase)."""
        counts: dict[tuple[str, str], int] = {}
        for kind, obj in self._objects():
            phase = (obj.get("status") or {}).get("phase") or "Unknown"
            counts[(kind, phase)] = counts.get((kind, phase), 0) + 1
        family = GaugeMetricFamily(
            "gyre_resources", "Gyre objects by kind and phase.", labels=["kind", "phase"]
        )
        for (kind, phase), count in sorted(counts.items()):
            family.add_metric([kind, phase], count)
        yield family


def register_resources(objects: Callable[[], Iterable[tuple[str, dict[str, Any]]]]) -> None:
    """Expose gyre_resources computed from the given objects."""
    REGISTRY.register(ResourcesByPhase(objects))


def serve_metrics(port: int, address: str = "0.0.0.0") -> None:
    """Serve /metrics on the given port in a background thread."""
    start_http_server(port, addr=address)
