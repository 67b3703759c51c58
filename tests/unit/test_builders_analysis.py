"""Canary figures from the serving pods' counters: parsing, increases, the p99, PromQL."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gyre_operator.api.inference import TrafficFigures
from gyre_operator.builders.analysis import (
    PodSample,
    figures_between,
    figures_from_query_results,
    histogram_quantile,
    parse_pod_metrics,
    prometheus_queries,
)

INF = math.inf
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


class ServerMetrics:
    """The serving runtime's metrics, exported by prometheus_client as the server does."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gyre_inference_requests",
            "Inference requests.",
            ["model", "version", "code"],
            registry=self.registry,
        )
        self.errors = Counter(
            "gyre_inference_errors",
            "Inference requests that failed on the server (5xx).",
            ["model", "version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gyre_inference_request_duration_seconds",
            "Inference request latency.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Same labels, other names: never mistaken for the figures.
        self.batch = Histogram(
            "gyre_inference_batch_size",
            "Rows per request.",
            ["model", "version"],
            buckets=(1, 8, 64),
            registry=self.registry,
        )
        self.loaded = Gauge(
            "gyre_model_loaded", "Loaded model.", ["model", "version"], registry=self.registry
        )

    def serve(
        self, model: str, version: str, code: int, seconds: float, times: int = 1
    ) -> ServerMetrics:
        for _ in range(times):
            self.requests.labels(model, version, str(code)).inc()
            if code >= 500:
                self.errors.labels(model, version).inc()
            self.latency.labels(model, version).observe(seconds)
            self.batch.labels(model, version).observe(4)
        self.loaded.labels(model, version).set(1)
        return self

    def text(self) -> str:
        return generate_latest(self.registry).decode()


# ---- parse_pod_metrics ----


def test_parse_pod_metrics_sums_codes_and_keeps_cumulative_buckets() -> None:
    metrics = (
        ServerMetrics()
        .serve("iris", "3", 200, 0.03, times=6)
        .serve("iris", "3", 400, 0.2, times=2)
        .serve("iris", "3", 500, 0.7, times=2)
        # Other versions of the model and other models on the same pod are not counted.
        .serve("iris", "4", 200, 0.03, times=50)
        .serve("iris", "4", 500, 0.03, times=9)
        .serve("wine", "3", 500, 3.0, times=40)
    )
    sample = parse_pod_metrics(metrics.text(), "iris", "3")
    assert sample == PodSample(
        requests=10.0,
        errors=2.0,
        buckets=(
            (0.01, 0.0),
            (0.05, 6.0),
            (0.1, 6.0),
            (0.25, 8.0),
            (0.5, 8.0),
            (1.0, 10.0),
            (INF, 10.0),
        ),
    )


def test_parse_pod_metrics_of_a_version_without_requests() -> None:
    text = ServerMetrics().serve("iris", "3", 200, 0.03, times=3).text()
    assert parse_pod_metrics(text, "iris", "7") == PodSample()
    assert parse_pod_metrics("", "iris", "3") == PodSample()


def test_parse_pod_metrics_of_a_fresh_server_has_no_figures() -> None:
    # Labelled metrics with no child yet export only their HELP and TYPE lines.
    assert parse_pod_metrics(ServerMetrics().text(), "iris", "3") == PodSample()


def test_parse_pod_metrics_refuses_text_that_is_not_the_exposition_format() -> None:
    with pytest.raises(ValueError):
        parse_pod_metrics("<html><body>502 Bad Gateway</body></html>\n", "iris", "3")


# ---- figures_between ----

BUCKETS_A = ((0.1, 40.0), (0.5, 90.0), (INF, 100.0))
BUCKETS_B = ((0.1, 80.0), (0.5, 170.0), (INF, 200.0))


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        # One pod read twice: the difference.
        (
            {"a": PodSample(100, 2, BUCKETS_A)},
            {"a": PodSample(200, 7, BUCKETS_B)},
            # 100 requests; buckets (0.1: 40, 0.5: 80, +Inf: 100); rank 99 -> +Inf bucket
            TrafficFigures(requests=100, error_rate=0.05, latency_p99_ms=500.0),
        ),
        # A pod that started since the first reading counted from zero.
        (
            {},
            {"a": PodSample(100, 2, BUCKETS_A)},
            TrafficFigures(requests=100, error_rate=0.02, latency_p99_ms=500.0),
        ),
        # A restarted pod (counters went down) counted from zero after its restart.
        (
            {"a": PodSample(200, 7, BUCKETS_B)},
            {"a": PodSample(100, 2, BUCKETS_A)},
            TrafficFigures(requests=100, error_rate=0.02, latency_p99_ms=500.0),
        ),
        # Several pods add up; a pod gone since the first reading adds nothing.
        (
            {
                "a": PodSample(100, 2, BUCKETS_A),
                "gone": PodSample(1000, 1000, BUCKETS_B),
            },
            {
                "a": PodSample(200, 7, BUCKETS_B),
                "b": PodSample(100, 2, BUCKETS_A),
            },
            TrafficFigures(requests=200, error_rate=0.035, latency_p99_ms=500.0),
        ),
        # No request in the interval: no error rate, no p99.
        (
            {"a": PodSample(100, 2, BUCKETS_A)},
            {"a": PodSample(100, 2, BUCKETS_A)},
            TrafficFigures(requests=0, error_rate=None, latency_p99_ms=None),
        ),
        ({}, {}, TrafficFigures(requests=0)),
        ({"a": PodSample(5, 0)}, {}, TrafficFigures(requests=0)),
        # Counters read a moment apart can show more errors than requests: capped at 1.
        (
            {"a": PodSample(10, 0)},
            {"a": PodSample(12, 3)},
            TrafficFigures(requests=2, error_rate=1.0, latency_p99_ms=None),
        ),
    ],
)
def test_figures_between(
    previous: dict[str, PodSample], current: dict[str, PodSample], expected: TrafficFigures
) -> None:
    figures = figures_between(previous, current)
    assert figures.requests == expected.requests
    assert figures.error_rate == pytest.approx(expected.error_rate)
    assert figures.latency_p99_ms == pytest.approx(expected.latency_p99_ms)


def test_figures_between_interpolates_the_p99_within_a_bucket() -> None:
    before = {"a": PodSample(0, 0, ((0.1, 0.0), (0.2, 0.0), (INF, 0.0)))}
    # 1000 requests: 900 under 100 ms, 100 between 100 and 200 ms. Rank 990 is 90 of the
    # second bucket's 100: 100 + 100 * 0.9 = 190 ms.
    after = {"a": PodSample(1000, 0, ((0.1, 900.0), (0.2, 1000.0), (INF, 1000.0)))}
    assert figures_between(before, after) == TrafficFigures(
        requests=1000, error_rate=0.0, latency_p99_ms=190.0
    )


def test_figures_between_from_two_scrapes_of_real_servers() -> None:
    pod_a, pod_b = ServerMetrics(), ServerMetrics()
    pod_a.serve("iris", "3", 200, 0.03, times=10)
    first = {"pod-a": parse_pod_metrics(pod_a.text(), "iris", "3")}
    pod_a.serve("iris", "3", 200, 0.03, times=38).serve("iris", "3", 503, 0.7, times=2)
    pod_b.serve("iris", "3", 200, 0.2, times=10)  # pod-b came up during the interval
    second = {
        "pod-a": parse_pod_metrics(pod_a.text(), "iris", "3"),
        "pod-b": parse_pod_metrics(pod_b.text(), "iris", "3"),
    }
    figures = figures_between(first, second)
    # 50 requests, 2 errors; rank 49.5 of 50 falls in (0.5, 1.0] which holds the two slow
    # ones, 48 below it: 500 + 500 * (1.5 / 2) = 875 ms.
    assert figures == TrafficFigures(requests=50, error_rate=0.04, latency_p99_ms=875.0)


# ---- histogram_quantile ----

HISTOGRAM = [(0.1, 50.0), (0.2, 90.0), (0.5, 99.0), (1.0, 100.0), (INF, 100.0)]
WITH_INF = [(0.1, 10.0), (0.5, 20.0), (INF, 100.0)]


@pytest.mark.parametrize(
    ("quantile", "buckets", "expected"),
    [
        (0.25, HISTOGRAM, 0.05),  # rank 25 of the first bucket's 50, from 0
        (0.5, HISTOGRAM, 0.1),  # exactly the first bucket's top
        (0.7, HISTOGRAM, 0.15),  # 20 of the second bucket's 40
        (0.9, HISTOGRAM, 0.2),
        (0.99, HISTOGRAM, 0.5),  # 9 of the third bucket's 9
        (0.995, HISTOGRAM, 0.75),  # half of the fourth bucket's single request
        (1.0, HISTOGRAM, 1.0),  # every request is under 1 s: the +Inf bucket is empty
        (0.0, HISTOGRAM, 0.0),
        (0.15, WITH_INF, 0.3),  # 5 of the second bucket's 10: 0.1 + 0.4 / 2
        (0.21, WITH_INF, 0.5),  # in +Inf: the highest finite bound
        (0.99, WITH_INF, 0.5),
        (1.0, WITH_INF, 0.5),
        # An empty first bucket: its rank-0 quantile is its own top, like Prometheus.
        (0.0, [(0.1, 0.0), (0.2, 4.0), (INF, 4.0)], 0.1),
        (0.5, [(0.1, 0.0), (0.2, 4.0), (INF, 4.0)], 0.15),
        # A histogram without a +Inf bucket is read up to its last bound.
        (0.5, [(0.1, 2.0), (0.3, 4.0)], 0.1),
        # Empty histograms have no quantile.
        (0.99, [], None),
        (0.99, [(0.1, 0.0), (0.5, 0.0), (INF, 0.0)], None),
    ],
)
def test_histogram_quantile(
    quantile: float, buckets: list[tuple[float, float]], expected: float | None
) -> None:
    assert histogram_quantile(quantile, buckets) == pytest.approx(expected)


@st.composite
def histograms(draw: st.DrawFn) -> list[tuple[float, float]]:
    """Cumulative histograms with 1 to 8 finite, increasing bounds and a +Inf bucket."""
    bounds = draw(
        st.lists(
            st.floats(min_value=1e-4, max_value=100.0, allow_nan=False),
            min_size=1,
            max_size=8,
            unique=True,
        ).map(sorted)
    )
    counts = draw(
        st.lists(
            st.integers(min_value=0, max_value=1000),
            min_size=len(bounds) + 1,
            max_size=len(bounds) + 1,
        )
    )
    cumulative = [float(sum(counts[: i + 1])) for i in range(len(counts))]
    return list(zip([*bounds, INF], cumulative, strict=True))


def _slack(value: float) -> float:
    return 1e-9 * max(1.0, abs(value))


@given(
    histograms(),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_histogram_quantile_is_monotone_and_within_the_bucket_bounds(
    buckets: list[tuple[float, float]], q1: float, q2: float
) -> None:
    low_q, high_q = sorted((q1, q2))
    low, high = histogram_quantile(low_q, buckets), histogram_quantile(high_q, buckets)
    if buckets[-1][1] == 0:
        assert low is None and high is None
        return
    assert low is not None and high is not None
    assert low <= high + _slack(high)
    highest = buckets[-2][0]
    for q, value in ((low_q, low), (high_q, high)):
        assert 0.0 <= value <= highest + _slack(highest)
        # The bucket the rank falls in bounds the value (+Inf reads as the highest bound).
        rank = q * buckets[-1][1]
        index = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
        lower = buckets[index - 1][0] if index > 0 else 0.0
        upper = buckets[index][0] if math.isfinite(buckets[index][0]) else lower
        assert lower - _slack(lower) <= value <= upper + _slack(upper)


# ---- Prometheus ----


def test_prometheus_queries() -> None:
    selector = 'namespace="ml",model="iris",version="3"'
    assert prometheus_queries("ml", "iris", "3", "30s") == {
        "requests": f"sum(increase(gyre_inference_requests_total{{{selector}}}[30s]))",
        "errors": f"sum(increase(gyre_inference_errors_total{{{selector}}}[30s]))",
        "p99": "histogram_quantile(0.99, sum by (le) "
        f"(increase(gyre_inference_request_duration_seconds_bucket{{{selector}}}[30s])))",
    }


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        # Empty results: no pod reported anything in the window.
        ({}, TrafficFigures(requests=0)),
        ({"requests": None, "errors": None, "p99": None}, TrafficFigures(requests=0)),
        # histogram_quantile of no observations is NaN in Prometheus.
        ({"requests": 0.0, "errors": 0.0, "p99": math.nan}, TrafficFigures(requests=0)),
        (
            {"requests": 120.4, "errors": None, "p99": 0.0875},
            TrafficFigures(requests=120, error_rate=0.0, latency_p99_ms=87.5),
        ),
        (
            {"requests": 200.0, "errors": 10.0, "p99": 0.25},
            TrafficFigures(requests=200, error_rate=0.05, latency_p99_ms=250.0),
        ),
        # increase() extrapolates: errors may come out above requests; capped at 1.
        (
            {"requests": 3.0, "errors": 3.2, "p99": INF},
            TrafficFigures(requests=3, error_rate=1.0, latency_p99_ms=None),
        ),
    ],
)
def test_figures_from_query_results(
    results: dict[str, float | None], expected: TrafficFigures
) -> None:
    assert figures_from_query_results(results) == expected
