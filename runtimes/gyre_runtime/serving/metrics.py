"""The inference server's Prometheus metrics, in a registry of their own, served on /metrics.

Every series carries the served `model` and `version`, which is how the canary analysis
tells the stable and canary pods apart:
- gyre_inference_requests_total{code}: inference requests by HTTP status of the answer;
- gyre_inference_errors_total: inference requests answered with a 5xx (the model failed),
  what the canary analysis counts as failures;
- gyre_inference_request_duration_seconds: from a request's last byte to its answer;
- gyre_inference_batch_size: rows in each onnxruntime run;
- gyre_inference_in_flight: inference requests received and not yet answered;
- gyre_model_info{sha256}: 1, with the digest of the model file served.

The request path only adds to plain numbers, which a collector reads at each scrape:
prometheus_client's own metric objects take a lock on every update, a cost each request
would pay several times, and the event loop is the only writer here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()
# Codes whose series exist (at 0) before the first such answer, so rates are defined.
_COMMON_CODES = (200, 400, 404, 413, 500)


class _Histogram:
    """Bucket counts and sum of observations, as plain numbers."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(bound) for bound in bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one observation (buckets are upper bounds, inclusive)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def family(self, name: str, documentation: str, labels: Sequence[str]) -> Metric:
        """The histogram as Prometheus exposes it: cumulative buckets, count and sum."""
        family = HistogramMetricFamily(name, documentation, labels=["model", "version"])
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        family.add_metric(list(labels), cumulative, self.total)
        return family


class ServingMetrics:
    """The metrics of one served model version, and their registry."""

    def __init__(self, model: str, version: str, sha256: str, in_flight: Callable[[], int]) -> None:
        self.model = model
        self.version = version
        self.sha256 = sha256
        self.codes: dict[int, int] = dict.fromkeys(_COMMON_CODES, 0)
        self.requests = 0
        self.errors = 0
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batches = _Histogram(BATCH_BUCKETS)
        self._in_flight = in_flight
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(self))

    def answered(self, code: int, seconds: float) -> None:
        """Count an answered inference request and its latency."""
        self.requests += 1
        codes = self.codes
        codes[code] = codes.get(code, 0) + 1
        self.latency.observe(seconds)
        if code >= 500:
            self.errors += 1

    def refused(self, code: int) -> None:
        """Count an inference request refused before it was read (no latency to record)."""
        self.requests += 1
        self.codes[code] = self.codes.get(code, 0) + 1

    def observe_batch(self, rows: int) -> None:
        """Count one onnxruntime run of that many rows."""
        self.batches.observe(rows)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)

    def families(self) -> Iterator[Metric]:
        """The current values as metric families."""
        labels = [self.model, self.version]
        requests = CounterMetricFamily(
            "gyre_inference_requests",
            "Inference requests, by HTTP status code of the answer.",
            labels=["model", "version", "code"],
        )
        for code, count in sorted(self.codes.items()):
            requests.add_metric([*labels, str(code)], count)
        yield requests
        errors = CounterMetricFamily(
            "gyre_inference_errors",
            "Inference requests answered with a server error (5xx).",
            labels=["model", "version"],
        )
        errors.add_metric(labels, self.errors)
        yield errors
        yield self.latency.family(
            "gyre_inference_request_duration_seconds",
            "Time from the end of an inference request to its answer.",
            labels,
        )
        yield self.batches.family(
            "gyre_inference_batch_size", "Rows in each onnxruntime run.", labels
        )
        flight = GaugeMetricFamily(
            "gyre_inference_in_flight",
            "Inference requests received and not yet answered.",
            labels=["model", "version"],
        )
        flight.add_metric(labels, self._in_flight())
        yield flight
        info = GaugeMetricFamily(
            "gyre_model_info",
            "The model served, with the sha256 of its file.",
            labels=["model", "version", "sha256"],
        )
        info.add_metric([*labels, self.sha256], 1)
        yield info


class _Collector(Collector):
    """Reads a ServingMetrics at each scrape."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """The current metric families."""
        return self._metrics.families()
