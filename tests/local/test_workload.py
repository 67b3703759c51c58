"""The wine workload: shifted data moves exactly the shifted features, the CSV round trip,
and the load generator against a real HTTP server speaking the v2 protocol."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from gyre_local.cluster import wait_for
from gyre_local.workload import (
    METADATA_RETRY,
    REQUEST_TIMEOUT,
    SHIFT_SDS,
    SHIFTED_FEATURES,
    STOP_GRACE,
    LoadGenerator,
    resample,
    shifted,
    wine,
    write_wine_csv,
)

INPUT = {"name": "float_input", "datatype": "FP32", "shape": [-1, 13]}


def column(name: str) -> int:
    return wine().feature_names.index(name)


def test_shifted_features_are_sklearn_names_and_more_than_half() -> None:
    assert set(SHIFTED_FEATURES) <= set(wine().feature_names)
    assert len(set(SHIFTED_FEATURES)) == len(SHIFTED_FEATURES) == 7
    assert len(SHIFTED_FEATURES) / len(wine().feature_names) > 0.5


def test_resampled_rows_are_new_but_distributed_as_the_data_set() -> None:
    features, target = resample(2000, seed=1)
    data = wine()
    assert features.shape == (2000, 13) and set(target.tolist()) == {0, 1, 2}
    originals = {tuple(row) for row in data.features.tolist()}
    assert not any(tuple(row) in originals for row in features.tolist())
    for i, name in enumerate(data.feature_names):
        assert stats.ks_2samp(features[:, i], data.features[:, i]).pvalue > 0.01, name


def test_shifted_moves_exactly_the_shifted_features_by_the_shift() -> None:
    base, _ = resample(2000, seed=1)
    moved = shifted(base, seed=2)
    data = wine()
    for i, name in enumerate(data.feature_names):
        if name in SHIFTED_FEATURES:
            change = (moved[:, i].mean() - base[:, i].mean()) / data.std[i]
            assert change == pytest.approx(SHIFT_SDS, abs=0.05), name
            assert stats.ks_2samp(moved[:, i], data.features[:, i]).pvalue < 1e-6, name
        else:
            assert np.array_equal(moved[:, i], base[:, i]), name
    assert not np.array_equal(base, moved)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as file:
        header, *rows = list(csv.reader(file))
    return header, rows


def test_csv_of_the_data_set_holds_its_rows_exactly(tmp_path: Path) -> None:
    path = tmp_path / "wine" / "wine.csv"
    digest = write_wine_csv(path)
    header, rows = read_csv(path)
    data = wine()
    assert header == [*data.feature_names, "target"]
    assert np.array_equal(np.array([r[:-1] for r in rows], dtype=float), data.features)
    assert [int(r[-1]) for r in rows] == data.target.tolist()
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in path.parent.iterdir()] == ["wine.csv"]


def test_shifted_csv_round_trip_is_seeded_and_moves_the_shifted_features(tmp_path: Path) -> None:
    path = tmp_path / "wine.csv"
    digest = write_wine_csv(path, shifted=True, rows=300, seed=3)
    header, rows = read_csv(path)
    assert header[-1] == "target" and len(rows) == 300
    values = np.array([r[:-1] for r in rows], dtype=float)
    assert {int(r[-1]) for r in rows} == {0, 1, 2}
    data = wine()
    for name in data.feature_names:
        i = column(name)
        moved = (values[:, i].mean() - data.features[:, i].mean()) / data.std[i]
        assert (moved > 1.0) == (name in SHIFTED_FEATURES), name
    assert write_wine_csv(path, shifted=True, rows=300, seed=3) == digest
    assert write_wine_csv(path, shifted=True, rows=300, seed=4) != digest


class ModelServer:
    """A v2 server in a thread: model `wine` with one input; records each infer request's
    input; answers `status(n)` to the n-th infer request (from 0) after `delay` seconds, or
    holds it while `hold` is set."""

    def __init__(
        self,
        status: Callable[[int], int] = lambda _: 200,
        *,
        port: int = 0,
        inputs: Any = None,
        delay: float = 0.0,
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.connections: list[socket.socket] = []
        self.hold = threading.Event()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: no waiting for the first's ACK.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                server.connections.append(self.connection)

            def do_GET(self) -> None:
                if self.path != "/v2/models/wine":
                    self.answer(404, {"error": "no such model"})
                    return
                self.answer(200, {"name": "wine", "inputs": inputs or [INPUT], "outputs": []})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                number = len(server.requests)
                server.requests.append(body["inputs"][0])
                if server.hold.is_set():
                    server.release.wait()
                    return
                time.sleep(delay)
                self.answer(status(number), {"model_name": "wine", "outputs": []})

            def answer(self, code: int, document: dict[str, Any]) -> None:
                data = json.dumps(document).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening and drop every open connection, as a server going away does."""
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def server() -> Iterator[ModelServer]:
    running = ModelServer()
    yield running
    running.close()


def test_requests_fill_the_input_the_metadata_names_one_row_each(server: ModelServer) -> None:
    with LoadGenerator(server.url, "wine", rate=200, seed=0) as load:
        wait_for(lambda: load.figures().ok >= 40, timeout=30)
    figures = load.figures()
    assert figures.failed == 0 and figures.last_error is None
    assert figures.ok <= len(server.requests) <= figures.sent
    for request in server.requests:
        assert request["name"] == "float_input" and request["datatype"] == "FP32"
        assert request["shape"] == [1, 13] and len(request["data"]) == 13


def test_non_2xx_answers_count_as_failed_with_the_last_error() -> None:
    server = ModelServer(lambda n: 503 if n % 2 else 200)
    try:
        with LoadGenerator(server.url, "wine", rate=200, seed=0) as load:
            wait_for(lambda: load.figures().failed >= 10, timeout=30)
    finally:
        server.close()
    figures = load.figures()
    assert figures.ok >= 9
    assert figures.last_error is not None and figures.last_error.startswith("HTTP 503")
    assert figures.ok + figures.failed <= len(server.requests)


def test_connection_errors_count_only_once_the_service_was_reachable() -> None:
    first = ModelServer()
    port = first.port
    first.close()
    with LoadGenerator(f"http://127.0.0.1:{port}", "wine", rate=200, seed=0) as load:
        time.sleep(3 * METADATA_RETRY)  # a few attempts at a port nothing listens on
        assert load.figures().failed == 0  # not reachable yet: waiting, not failing
        server = ModelServer(port=port)
        try:
            wait_for(lambda: load.figures().ok >= 10, timeout=30)
        finally:
            server.close()
        wait_for(lambda: load.figures().failed >= 5, timeout=30)
    last_error = load.figures().last_error
    assert last_error is not None and not last_error.startswith("HTTP")


def test_a_model_a_wine_row_does_not_fit_is_reported_not_sent() -> None:
    server = ModelServer(inputs=[{"name": "x", "datatype": "FP32", "shape": [-1, 4]}])
    try:
        with LoadGenerator(server.url, "wine", rate=200, seed=0, connections=1) as load:
            wait_for(lambda: load.figures().last_error, timeout=30)
    finally:
        server.close()
    assert "shape [-1, 4]" in str(load.figures().last_error)
    assert load.figures().sent == 0 and server.requests == []


def test_shift_switches_the_rows_live(server: ModelServer) -> None:
    def rows(start: int, end: int) -> Any:
        return np.array([r["data"] for r in server.requests[start:end]])

    data = wine()
    with LoadGenerator(server.url, "wine", rate=400, seed=0) as load:
        wait_for(lambda: len(server.requests) >= 100, timeout=30)
        load.shift(True)
        assert load.figures().shifted
        steady_end = len(server.requests) + 4  # requests already under way may be steady
        wait_for(lambda: len(server.requests) >= steady_end + 100, timeout=30)
        load.shift(False)
        shifted_end = len(server.requests)
        wait_for(lambda: len(server.requests) >= shifted_end + 104, timeout=30)
    steady, moved, back = rows(0, 100), rows(steady_end, steady_end + 100), rows(-100, None)
    for name in data.feature_names:
        i = column(name)
        change = (moved[:, i].mean() - steady[:, i].mean()) / data.std[i]
        assert (change > 1.0) == (name in SHIFTED_FEATURES), name
        assert abs(back[:, i].mean() - steady[:, i].mean()) / data.std[i] < 0.5, name


def test_stop_cuts_off_requests_in_flight(server: ModelServer) -> None:
    server.hold.set()
    load = LoadGenerator(server.url, "wine", rate=200, seed=0, connections=2).start()
    wait_for(lambda: len(server.requests) >= 2, timeout=30)
    stopper = threading.Thread(target=load.stop)
    stopper.start()
    # Without cutting them off after the grace, stop() would wait for the answers' timeout.
    stopper.join((STOP_GRACE + REQUEST_TIMEOUT) / 2)
    assert not stopper.is_alive()
    assert load.figures().failed == 0  # cut off by stop(), not failed by the service


def test_stop_lets_answers_under_way_arrive() -> None:
    server = ModelServer(delay=STOP_GRACE / 4)
    try:
        load = LoadGenerator(server.url, "wine", rate=200, seed=0, connections=2).start()
        wait_for(lambda: len(server.requests) >= 4, timeout=30)
        load.stop()
    finally:
        server.close()
    figures = load.figures()
    assert figures.failed == 0 and figures.ok == len(server.requests) == figures.sent
