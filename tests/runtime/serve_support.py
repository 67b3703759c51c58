"""What the `gyre-runtime serve` tests share: models, a server process, raw HTTP exchanges.

Models are real: a random forest trained on scikit-learn's wine data and exported by the
built-in trainer's exporter; a graph whose Gather fails at inference for out-of-range
indices (a model that fails, not bad input); a graph over strings (BYTES).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier

from gyre_runtime.training.export import export

WINE_FEATURES = 13
START_TIMEOUT = 30.0


def wine_model(path: Path) -> Path:
    """A 10-tree random forest on the wine data (13 FP32 features): label, probabilities."""
    x, y = load_wine(return_X_y=True)
    estimator = RandomForestClassifier(n_estimators=10, random_state=0).fit(x.astype(np.float32), y)
    path.write_bytes(export(estimator, WINE_FEATURES))
    return path


def wine_rows(count: int, seed: int = 0) -> np.ndarray:
    """Rows of the wine data, as the model takes them."""
    x, _ = load_wine(return_X_y=True)
    return x[np.random.default_rng(seed).integers(0, len(x), count)].astype(np.float32)


def gather_model(path: Path, size: int = 10) -> Path:
    """indices INT64 [-1] -> values FP32 [-1]: a lookup that fails for indices >= size."""
    table = helper.make_tensor("table", TensorProto.FLOAT, [size], [float(i) for i in range(size)])
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "indices"], ["values"], axis=0)],
        "lookup",
        [helper.make_tensor_value_info("indices", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, [None])],
        initializer=[table],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def strings_model(path: Path) -> Path:
    """words STRING [-1, 2] -> same STRING [-1, 2] (Identity): BYTES both ways."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["words"], ["same"])],
        "echo",
        [helper.make_tensor_value_info("words", TensorProto.STRING, [None, 2])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, [None, 2])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """A `gyre-runtime serve` process on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    termination_path: Path
    stderr_path: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a fresh connection: status, headers (lower-case), body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return (
                response.status,
                {name.lower(): value for name, value in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def json(self, method: str, path: str, document: Any = None) -> tuple[int, Any]:
        """A JSON request: status and decoded JSON body."""
        body = None if document is None else json.dumps(document).encode()
        status, _, data = self.request(method, path, body)
        return status, json.loads(data)

    def metrics(self) -> str:
        """The /metrics text."""
        status, _, data = self.request("GET", "/metrics")
        assert status == 200
        return data.decode()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def termination_message(self) -> dict[str, Any]:
        """The JSON the process left as its termination message."""
        message: dict[str, Any] = json.loads(self.termination_path.read_text())
        return message

    def stderr(self) -> str:
        """What the process wrote to stderr."""
        return self.stderr_path.read_text(errors="replace")


def start_server(
    model: Path, directory: Path, args: Sequence[str] = (), env: dict[str, str] | None = None
) -> Server:
    """Start `gyre-runtime serve` on a free port and wait until it is ready."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    termination = directory / "termination-log"
    stderr = directory / "stderr.txt"
    environment = {
        **os.environ,
        "GYRE_TERMINATION_MESSAGE_PATH": str(termination),
        **(env or {}),
    }
    environment.pop("PORT", None)
    if env and "PORT" in env:
        environment["PORT"] = env["PORT"]
        port = int(env["PORT"])
    command = [sys.executable, "-m", "gyre_runtime.cli", "serve", "--model", str(model)]
    command += ["--port", str(port), "--host", "127.0.0.1"]
    if "--shutdown-delay" not in args:
        # No load balancer to wait for: stop at once unless a test asks otherwise.
        command += ["--shutdown-delay", "0"]
    command += args
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=errors, env=environment
        )
    server = Server(process, port, termination, stderr)
    wait_ready(server)
    return server


def wait_ready(server: Server) -> None:
    """Poll /v2/health/ready until it answers 200."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"the server exited: {server.stderr()}")
        with contextlib.suppress(OSError):
            if server.request("GET", "/v2/health/ready")[0] == 200:
                return
        time.sleep(0.05)
    server.process.kill()
    raise AssertionError(f"the server was not ready in {START_TIMEOUT}s: {server.stderr()}")


@contextlib.contextmanager
def running(
    model: Path, directory: Path, args: Sequence[str] = (), env: dict[str, str] | None = None
) -> Iterator[Server]:
    """A server for the duration of the block; stopped (SIGTERM) after it."""
    server = start_server(model, directory, args, env)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(30)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


@dataclass
class Response:
    """A response parsed from raw bytes."""

    status: int
    headers: dict[str, str]
    body: bytes


def parse_responses(data: bytes, head: bool = False) -> list[Response]:
    """Every complete response in a byte stream, in order, interim 1xx ones included (the
    server always frames its bodies by Content-Length); `head`: answers to HEAD, no bodies."""
    responses = []
    offset = 0
    while (head_end := data.find(b"\r\n\r\n", offset)) >= 0:
        status_line, *lines = data[offset:head_end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers.get("content-length", "0"))
        if head_end + 4 + length > len(data):
            break
        body = data[head_end + 4 : head_end + 4 + length]
        responses.append(Response(int(status_line.split()[1]), headers, body))
        offset = head_end + 4 + length
    return responses


def exchange(port: int, data: bytes, *, half_close: bool = True, timeout: float = 10.0) -> bytes:
    """Send raw bytes on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def read_responses(sock: socket.socket, count: int) -> tuple[list[Response], bytes]:
    """Read from an open connection until `count` responses arrived: them and the raw bytes."""
    data = b""
    while True:
        responses = parse_responses(data)
        if len(responses) >= count:
            return responses, data
        chunk = sock.recv(65536)
        if not chunk:
            return responses, data
        data += chunk


def infer_body(rows: np.ndarray, request_id: str | None = None) -> bytes:
    """A JSON infer request for the wine model."""
    document: dict[str, Any] = {
        "inputs": [
            {
                "name": "input",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    if request_id is not None:
        document["id"] = request_id
    return json.dumps(document).encode()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    """The raw bytes of a POST with a Content-Length body."""
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body
