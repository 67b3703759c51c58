"""Canary figures from the serving pods' own /metrics: counters read twice, subtracted.

A serving pod (`gyre-runtime serve`) exports cumulative counters per model version:
requests, server errors (5xx) and a latency histogram. Two readings of every pod of one side
(canary or stable), an interval apart, give that side's requests, error rate and p99 latency
over the interval, computed the way Prometheus' `increase` and `histogram_quantile` do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from gyre_operator.api.inference import TrafficFigures

REQUESTS = "gyre_inference_requests_total"
ERRORS = "gyre_inference_errors_total"
LATENCY = "gyre_inference_request_duration_seconds"
QUANTILE = 0.99


@dataclass(frozen=True)
class PodSample:
    """One pod's cumulative counters for one model version."""

    requests: float = 0.0
    errors: float = 0.0
    # (upper bound in seconds, cumulative count), ascending, +Inf last
    buckets: tuple[tuple[float, float], ...] = field(default=())


def parse_pod_metrics(text: str, model: str, version: str) -> PodSample:
    """The counters of one model version in a pod's Prometheus text; ValueError if unparsable."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    wanted = {"model": model, "version": version}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if any(sample.labels.get(k) != v for k, v in wanted.items()):
                continue
            if sample.name == REQUESTS:
                requests += sample.value
            elif sample.name == ERRORS:
                errors += sample.value
            elif sample.name == f"{LATENCY}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return PodSample(requests, errors, tuple(sorted(buckets.items())))


def _increase(previous: float, current: float) -> float:
    # A counter that went down belongs to a restarted process: it counted from zero.
    return current if current < previous else current - previous


def figures_between(
    previous: Mapping[str, PodSample], current: Mapping[str, PodSample]
) -> TrafficFigures:
    """One side's figures over an interval from two readings of its pods (pod name -> sample);
    a pod absent from the first reading started since, so it counted from zero."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for pod, now in current.items():
        before = previous.get(pod, PodSample())
        requests += _increase(before.requests, now.requests)
        errors += _increase(before.errors, now.errors)
        earlier = dict(before.buckets)
        for bound, count in now.buckets:
            buckets[bound] = buckets.get(bound, 0.0) + _increase(earlier.get(bound, 0.0), count)
    total = round(requests)
    return TrafficFigures(
        requests=total,
        error_rate=min(1.0, errors / requests) if requests > 0 else None,
        latency_p99_ms=_milliseconds(histogram_quantile(QUANTILE, sorted(buckets.items()))),
    )


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def histogram_quantile(quantile: float, buckets: list[tuple[float, float]]) -> float | None:
    """The quantile of a cumulative histogram (upper bound, count), interpolated linearly
    within the bucket as Prometheus does; the highest finite bound when it falls in +Inf."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = quantile * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def prometheus_queries(namespace: str, model: str, version: str, window: str) -> dict[str, str]:
    """The PromQL of one side's figures over a window (`30s`), by the labels the serving
    pods export plus the namespace label Prometheus' Kubernetes discovery adds."""
    selector = f'namespace="{namespace}",model="{model}",version="{version}"'
    return {
        "requests": f"sum(increase({REQUESTS}{{{selector}}}[{window}]))",
        "errors": f"sum(increase({ERRORS}{{{selector}}}[{window}]))",
        "p99": f"histogram_quantile({QUANTILE}, sum by (le) "
        f"(increase({LATENCY}_bucket{{{selector}}}[{window}])))",
    }


def figures_from_query_results(results: Mapping[str, float | None]) -> TrafficFigures:
    """One side's figures from the values of `prometheus_queries` (None: an empty result)."""
    requests = results.get("requests") or 0.0
    errors = results.get("errors") or 0.0
    p99 = results.get("p99")
    return TrafficFigures(
        requests=round(requests),
        error_rate=min(1.0, errors / requests) if requests > 0 else None,
        latency_p99_ms=_milliseconds(p99) if p99 is not None and math.isfinite(p99) else None,
    )
