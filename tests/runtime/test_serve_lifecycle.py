"""`gyre-runtime serve` from start to exit: refused models, a model that fails at
inference, shutdown on SIGTERM, the request log, and the port."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serve_support import (
    Server,
    free_port,
    gather_model,
    infer_body,
    post,
    read_responses,
    running,
    start_server,
    wine_model,
    wine_rows,
)
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

from gyre_runtime.cli import main

WINE_FEATURES = [str(name) for name in load_wine().feature_names]


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wine_model(tmp_path_factory.mktemp("wine") / "model.onnx")


def test_a_model_whose_digest_differs_is_refused(
    wine: Path, termination_message: Callable[[], dict[str, Any]]
) -> None:
    registered = "0" * 64
    assert main(["serve", "--model", str(wine), "--name", "wine", "--sha256", registered]) == 1
    message = termination_message()
    actual = hashlib.sha256(wine.read_bytes()).hexdigest()
    assert message["reason"] == "DigestMismatch"
    assert registered in message["message"] and actual in message["message"]


@pytest.mark.parametrize("content", ["garbage", "zipmap", "missing"])
def test_what_is_not_a_servable_model_is_refused(
    tmp_path: Path, termination_message: Callable[[], dict[str, Any]], content: str
) -> None:
    path = tmp_path / "model.onnx"
    if content == "garbage":
        path.write_bytes(b"not a model at all")
    elif content == "zipmap":
        x, y = load_wine(return_X_y=True)
        estimator = LogisticRegression(max_iter=5000).fit(x.astype(np.float32), y)
        initial = [("input", FloatTensorType([None, 13]))]
        path.write_bytes(to_onnx(estimator, initial_types=initial).SerializeToString())
    assert main(["serve", "--model", str(path), "--name", "m"]) == 1
    message = termination_message()
    assert message["reason"] == "InvalidModel"
    if content == "zipmap":
        assert "without ZipMap" in message["message"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--parameters", "[1]"], "--parameters must be a JSON object"),
        (["--parameters", "{"], "--parameters is not JSON"),
        (["--max-batch-size", "0"], "--max-batch-size must be at least 1, not 0"),
        (["--threads", "0"], "--threads must be at least 1, not 0"),
        (["--request-log-root", "/tmp/x"], "--request-log-root needs --service"),
    ],
)
def test_bad_arguments(
    wine: Path, termination_message: Callable[[], dict[str, Any]], args: list[str], problem: str
) -> None:
    assert main(["serve", "--model", str(wine), "--name", "wine", *args]) == 1
    message = termination_message()
    assert message["reason"] == "InvalidArgument"
    assert message["message"].startswith(problem)


def test_the_port_variable_wins_over_the_flag(wine: Path, tmp_path: Path) -> None:
    port = free_port()
    with running(wine, tmp_path, ["--name", "wine"], env={"PORT": str(port)}) as server:
        assert server.port == port
        assert server.request("GET", "/v2/health/live")[0] == 200


def errors_total(server: Server) -> float:
    for family in text_string_to_metric_families(server.metrics()):
        if family.name == "gyre_inference_errors":
            return float(family.samples[0].value)
    raise AssertionError("no gyre_inference_errors")


def lookup(indices: list[int], request_id: str) -> bytes:
    entry = {"name": "indices", "shape": [len(indices)], "datatype": "INT64", "data": indices}
    return json.dumps({"id": request_id, "inputs": [entry]}).encode()


def test_a_model_that_fails_answers_500_only_to_the_requests_that_make_it_fail(
    tmp_path: Path,
) -> None:
    model = gather_model(tmp_path / "gather.onnx")
    # A long batch window: the good and bad requests below share a run.
    args = ["--name", "lookup", "--max-batch-delay", "200"]
    with running(model, tmp_path / "server", args) as server:
        results: dict[str, tuple[int, dict[str, Any]]] = {}

        def call(indices: list[int], request_id: str) -> None:
            results[request_id] = server.json(
                "POST", "/v2/models/lookup/infer", json.loads(lookup(indices, request_id))
            )

        calls = [([1, 2], "good-1"), ([99], "bad"), ([3], "good-2")]
        threads = [threading.Thread(target=call, args=arguments) for arguments in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results["good-1"] == (
            200,
            {
                "id": "good-1",
                "model_name": "lookup",
                "model_version": "1",
                "outputs": [
                    {"name": "values", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}
                ],
            },
        )
        assert results["good-2"][0] == 200
        assert results["good-2"][1]["outputs"][0]["data"] == [3.0]
        status, body = results["bad"]
        assert status == 500
        assert body["error"].startswith("the model failed: ")
        assert errors_total(server) == 1
        # The server goes on answering.
        assert (
            server.json("POST", "/v2/models/lookup/infer", json.loads(lookup([4], "again")))[0]
            == 200
        )
        assert (
            server.json("POST", "/v2/models/lookup/infer", json.loads(lookup([10], "b")))[0] == 500
        )
        assert errors_total(server) == 2
        summary_code = server.stop()
        assert summary_code == 0
        summary = server.termination_message()
        assert (summary["requests"], summary["errors"]) == (5, 2)


def test_sigterm_stops_readiness_at_once_then_drains_and_exits_0(
    wine: Path, tmp_path: Path
) -> None:
    # Requests wait 600 ms for their batch, longer than the 300 ms shutdown delay: the
    # one below is still in flight when the server stops accepting.
    args = ["--name", "wine", "--shutdown-delay", "0.3", "--max-batch-delay", "600"]
    server = start_server(wine, tmp_path, args)
    try:
        keep_alive = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        keep_alive.sendall(b"GET /v2/health/live HTTP/1.1\r\n\r\n")
        (first,), _ = read_responses(keep_alive, 1)
        assert "connection" not in first.headers
        in_flight = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        in_flight.sendall(post("/v2/models/wine/infer", infer_body(wine_rows(1), "late")))
        time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        # Within the shutdown delay: not ready, still answering, each answer closing.
        status, headers, body = server.request("GET", "/v2/health/ready")
        assert (status, json.loads(body)) == (503, {"ready": False})
        assert headers["connection"] == "close"
        keep_alive.sendall(b"GET /v2/health/live HTTP/1.1\r\n\r\n")
        (second,), _ = read_responses(keep_alive, 1)
        assert second.status == 200 and second.headers["connection"] == "close"
        assert keep_alive.recv(100) == b""
        (answer,), _ = read_responses(in_flight, 1)
        assert answer.status == 200 and json.loads(answer.body)["id"] == "late"
        assert server.process.wait(30) == 0
        summary = server.termination_message()
        assert (summary["requests"], summary["errors"], summary["unfinished"]) == (1, 0, 0)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    finally:
        if server.process.poll() is None:
            server.process.kill()


def test_requests_are_logged_for_drift_checks(wine: Path, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    args = [
        "--name",
        "wine",
        "--version",
        "2",
        "--request-log-root",
        root.as_uri(),
        "--service",
        "wine-isvc",
        "--pod",
        "wine-isvc-stable-0",
        "--features",
        ",".join(WINE_FEATURES),
    ]
    with running(wine, tmp_path / "server", args) as server:
        rows = wine_rows(5)
        server.request("POST", "/v2/models/wine/infer", infer_body(rows[:2], "with-id"))
        server.request("POST", "/v2/models/wine/infer", infer_body(rows[2:]))
        server.request("POST", "/v2/models/wine/infer", b"{}")
        assert server.stop() == 0
        summary = server.termination_message()
    assert summary["requestLog"]["rowsLogged"] == 5
    (path,) = (root / "requests" / "wine-isvc").glob("*/wine-isvc-stable-0-*.parquet")
    table = pq.read_table(path).to_pydict()
    assert table["model_version"] == ["2"] * 5
    assert table["request_id"][:2] == ["with-id", "with-id"]
    generated = table["request_id"][2]
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9]+", generated), generated
    assert set(table["request_id"][2:]) == {generated}
    np.testing.assert_allclose(table["alcohol"], rows[:, 0])
    assert "output.label" in table and len(table["output.probabilities_0"]) == 5
