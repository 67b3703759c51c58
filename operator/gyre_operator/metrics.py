"""The operator's Prometheus metrics (prefix gyre_)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

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


def serve_metrics(port: int, address: str = "0.0.0.0") -> None:
    """Serve /metrics on the given port in a background thread."""
    start_http_server(port, addr=address)
