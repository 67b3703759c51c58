"""Canary figures read from a real Prometheus that scrapes real `gyre-runtime serve` processes.

Two servers play stable (a good model) and canary (a model that fails on real inputs);
Debian's prometheus scrapes both every second with the `namespace` label Kubernetes discovery
would add; the operator's PromQL (`analysis.prometheus`) must then give the canary an error
rate of 1 and the stable side 0, with request counts and a p99 latency.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_models import ROWS, classifier, failing_model

from gyre_local.cluster import wait_for
from gyre_operator.builders.serving import Track
from gyre_operator.controllers.figures import query_prometheus, read_prometheus_figures

pytestmark = pytest.mark.slow
PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(path: Path, model: bytes, version: int) -> tuple[subprocess.Popen[bytes], int]:
    """`gyre-runtime serve` of a model file on a free port, once it is ready."""
    path.write_bytes(model)
    port = free_port()
    argv = [
        sys.executable, "-m", "gyre_runtime.cli", "serve", "--model", str(path),
        "--sha256", hashlib.sha256(model).hexdigest(), "--name", "wine",
        "--version", str(version), "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready() -> bool:
        assert process.poll() is None, "the server exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return True
        except OSError:
            return False

    wait_for(ready, timeout=30)
    return process, port


def send(port: int, count: int) -> None:
    """count single-row inference requests; errors are what the canary is for."""
    for i in range(count):
        body = {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 13],
                    "datatype": "FP32",
                    "data": ROWS[i % len(ROWS)].tolist(),
                }
            ]
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/models/wine/infer",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
        except urllib.error.HTTPError as error:
            error.read()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[Track, int]]:
    """Stable (version 1, good) and canary (version 2, failing) servers: their ports."""
    stable, stable_port = serve(tmp_path / "good.onnx", classifier(3), 1)
    canary, canary_port = serve(tmp_path / "failing.onnx", failing_model(), 2)
    yield {Track.STABLE: stable_port, Track.CANARY: canary_port}
    for process in (stable, canary):
        process.terminate()
        process.wait(30)


@pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed")
def test_figures_from_prometheus(tmp_path: Path, servers: dict[Track, int]) -> None:
    assert PROMETHEUS is not None
    port = free_port()
    targets = [f"127.0.0.1:{p}" for p in servers.values()]
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "gyre-serving",
                "static_configs": [{"targets": targets, "labels": {"namespace": "prod"}}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))
    prometheus = subprocess.Popen(
        [
            PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        up = "count(up == 1)"
        wait_for(lambda: _value(url, up) == 2.0, timeout=60)
        time.sleep(2)  # a scrape before the traffic: increase() needs two samples
        send(servers[Track.STABLE], 60)
        send(servers[Track.CANARY], 40)
        reading = None

        def counted() -> bool:
            nonlocal reading
            reading = asyncio.run(
                read_prometheus_figures(
                    url, "prod", "wine", {Track.CANARY: 2, Track.STABLE: 1}, "1m"
                )
            )
            canary, stable = reading.canary, reading.stable
            return bool(canary and stable and canary.requests >= 30 and stable.requests >= 45)

        wait_for(counted, timeout=30)
        assert reading is not None and reading.canary and reading.stable
        assert reading.canary.error_rate == pytest.approx(1.0)
        assert reading.stable.error_rate == 0.0
        assert reading.stable.latency_p99_ms is not None and reading.stable.latency_p99_ms > 0
        wrong_namespace = asyncio.run(
            read_prometheus_figures(url, "staging", "wine", {Track.CANARY: 2}, "1m")
        )
        assert wrong_namespace.canary is not None and wrong_namespace.canary.requests == 0
    finally:
        prometheus.terminate()
        prometheus.wait(30)


def _value(url: str, query: str) -> float | None:
    try:
        return query_prometheus(url, query)
    except OSError:
        return None
