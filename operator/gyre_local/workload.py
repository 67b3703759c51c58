"""The wine workload of the demo and the loop scenarios: labelled data and live traffic.

- `wine()`: scikit-learn's wine data set (178 rows, 13 numeric features as sklearn names them,
  3 classes in `target`).
- `resample(rows, seed)`: rows drawn from it with replacement, each value moved by a little
  noise (NOISE_SDS standard deviations of its feature), so the data is new but its
  distribution is the same.
- `shifted(features, seed)`: the same rows with the SHIFTED_FEATURES (7 of 13, more than the
  default driftedFeatureShare of 0.5) moved by SHIFT_SDS standard deviations plus noise; the
  other features are left as they are.
- `write_wine_csv(path, ...)`: labelled rows as CSV (the features, then `target`), written
  atomically through gyre_runtime's storage: the source of a Dataset.
- `LoadGenerator(url, model, rate=, seed=)`: threads sending Open Inference Protocol v2 infer
  requests of one row each, at a steady rate, steady or shifted traffic switchable live.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import http.client
import io
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from gyre_runtime import storage

SHIFTED_FEATURES = (
    "alcohol",
    "malic_acid",
    "total_phenols",
    "flavanoids",
    "color_intensity",
    "hue",
    "proline",
)
SHIFT_SDS = 1.5
NOISE_SDS = 0.05
# The data set's own values have at most two decimals; four keep the noise and stay readable.
CSV_DECIMALS = 4
TARGET = "target"

DEFAULT_RATE = 40.0
DEFAULT_CONNECTIONS = 4
REQUEST_TIMEOUT = 5.0
# A stopped generator lets answers this close arrive rather than cut the exchange.
STOP_GRACE = 1.0
METADATA_RETRY = 0.5
# Requests answered in the last RATE_WINDOW seconds make the reported rate.
RATE_WINDOW = 5.0

Floats = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Wine:
    """The wine data set: feature names, the feature matrix, labels, per-feature std."""

    feature_names: tuple[str, ...]
    features: Floats
    target: Labels
    std: Floats


@functools.cache
def wine() -> Wine:
    """scikit-learn's wine data set, loaded once."""
    from sklearn.datasets import load_wine  # type: ignore[import-untyped]

    data = load_wine()
    features = np.asarray(data.data, dtype=np.float64)
    return Wine(
        feature_names=tuple(str(name) for name in data.feature_names),
        features=features,
        target=np.asarray(data.target, dtype=np.int64),
        std=features.std(axis=0, ddof=1),
    )


def resample(rows: int, seed: int) -> tuple[Floats, Labels]:
    """`rows` labelled rows drawn from the wine data with replacement, plus small noise."""
    return _draw(np.random.default_rng(seed), rows)


def shifted(features: Floats, seed: int) -> Floats:
    """A copy of wine feature rows with SHIFTED_FEATURES moved by SHIFT_SDS standard
    deviations plus small noise; the other features are unchanged."""
    return _move(np.random.default_rng(seed), features)


def write_wine_csv(
    path: Path, *, shifted: bool = False, rows: int | None = None, seed: int = 0
) -> str:
    """Write labelled wine rows as CSV (the 13 feature names, then `target`) atomically and
    return the file's sha256. Without `rows` and unshifted: the data set's own rows, exactly;
    with `rows`: that many resampled rows; `shifted` moves SHIFTED_FEATURES. Seeded."""
    data = wine()
    rng = np.random.default_rng(seed)
    if rows is None:
        features, target = data.features, data.target
    else:
        features, target = _draw(rng, rows)
        features = features.round(CSV_DECIMALS)
    if shifted:
        features = _move(rng, features).round(CSV_DECIMALS)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow([*data.feature_names, TARGET])
    for values, label in zip(features.tolist(), target.tolist(), strict=True):
        writer.writerow([*values, label])
    return storage.write_bytes(str(path), text.getvalue().encode())


def _draw(rng: np.random.Generator, rows: int) -> tuple[Floats, Labels]:
    data = wine()
    picked = rng.integers(0, len(data.target), size=rows)
    noise = rng.normal(0.0, NOISE_SDS, size=(rows, len(data.std))) * data.std
    return data.features[picked] + noise, data.target[picked]


def _move(rng: np.random.Generator, features: Floats) -> Floats:
    data = wine()
    columns = [data.feature_names.index(name) for name in SHIFTED_FEATURES]
    moved = np.array(features, dtype=np.float64, copy=True)
    std = data.std[columns]
    noise = rng.normal(0.0, NOISE_SDS, size=(len(moved), len(columns))) * std
    moved[:, columns] += SHIFT_SDS * std + noise
    return moved


@dataclass(frozen=True)
class LoadFigures:
    """What a load generator did so far: requests sent, answered 2xx, failed; the rate of
    answers over the last RATE_WINDOW seconds; whether traffic is shifted; the last error."""

    sent: int
    ok: int
    failed: int
    rate: float
    shifted: bool
    last_error: str | None = None


@dataclass(frozen=True)
class _Input:
    """The model input a request fills: its name, datatype and row width."""

    name: str
    datatype: str
    width: int


class LoadGenerator:
    """Infer requests of one wine row each to `{url}/v2/models/{model}/infer`, `rate` a second
    shared by `connections` threads, each on its own keep-alive connection, never retried.

    Each thread first reads the model's metadata (`GET /v2/models/{model}`), retrying until
    the service answers, for the input's name and datatype. From then on a non-2xx answer or
    a connection error counts as failed. Usable as a context manager.
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        rate: float = DEFAULT_RATE,
        seed: int = 0,
        connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        if rate <= 0 or connections < 1:
            raise ValueError("rate must be positive and connections at least 1")
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"expected an http://host[:port] URL, got {url!r}")
        self.url = url
        self.model = model
        self.rate = rate
        self._address = (parts.hostname, parts.port or 80)
        self._prefix = parts.path.rstrip("/")
        self._seed = seed
        self._count = connections
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._next_send = 0.0
        self._shifted = False
        self._sent = self._ok = self._failed = 0
        self._last_error: str | None = None
        self._answered: deque[float] = deque()
        self._started = 0.0
        self._threads: list[threading.Thread] = []
        self._connections: list[http.client.HTTPConnection] = []

    def start(self) -> LoadGenerator:
        """Start the threads; returns self."""
        if self._threads:
            raise RuntimeError("the load generator was already started")
        self._started = time.monotonic()
        for index in range(self._count):
            connection = http.client.HTTPConnection(*self._address, timeout=REQUEST_TIMEOUT)
            self._connections.append(connection)
            thread = threading.Thread(
                target=self._work,
                args=(connection, index),
                name=f"load-{self.model}-{index}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        """Stop sending: requests in flight get STOP_GRACE seconds to finish, then are cut
        off; the threads are joined."""
        self._stopping.set()
        deadline = time.monotonic() + STOP_GRACE
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for connection in self._connections:
            # Unblocks a thread still waiting for an answer; it then sees the stop and ends.
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join()
        for connection in self._connections:
            connection.close()

    def shift(self, on: bool = True) -> None:
        """Send shifted rows from now on (or steady ones again with on=False)."""
        self._shifted = on

    def figures(self) -> LoadFigures:
        """The counts so far and the current rate."""
        now = time.monotonic()
        with self._lock:
            self._forget_before(now - RATE_WINDOW)
            span = min(RATE_WINDOW, now - self._started) if self._started else 0.0
            return LoadFigures(
                sent=self._sent,
                ok=self._ok,
                failed=self._failed,
                rate=len(self._answered) / span if span > 0 else 0.0,
                shifted=self._shifted,
                last_error=self._last_error,
            )

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _work(self, connection: http.client.HTTPConnection, index: int) -> None:
        rng = np.random.default_rng([self._seed, index])
        model_input = self._metadata(connection)
        if model_input is None:
            return
        path = f"{self._prefix}/v2/models/{self.model}/infer"
        while self._wait_turn():
            features, _ = _draw(rng, 1)
            if self._shifted:
                features = _move(rng, features)
            body = {
                "inputs": [
                    {
                        "name": model_input.name,
                        "shape": [1, model_input.width],
                        "datatype": model_input.datatype,
                        "data": features[0].tolist(),
                    }
                ]
            }
            with self._lock:
                self._sent += 1
            try:
                status, text = _exchange(connection, "POST", path, json.dumps(body).encode())
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                self._count_answer(None, f"{type(error).__name__}: {error}")
                continue
            self._count_answer(status, None if 200 <= status < 300 else f"HTTP {status}: {text}")

    def _metadata(self, connection: http.client.HTTPConnection) -> _Input | None:
        """The model's input, once the service answers; None when stopped first or when the
        model is not one a wine row fits."""
        path = f"{self._prefix}/v2/models/{self.model}"
        while not self._stopping.is_set():
            try:
                status, text = _exchange(connection, "GET", path, None)
            except (OSError, http.client.HTTPException):
                connection.close()
                status, text = 0, ""
            if status == 200:
                try:
                    return _model_input(json.loads(text), len(wine().feature_names))
                except ValueError as error:
                    with self._lock:
                        self._last_error = str(error)
                    return None
            self._stopping.wait(METADATA_RETRY)
        return None

    def _wait_turn(self) -> bool:
        """Wait for this thread's next send time; False once stopped."""
        with self._lock:
            now = time.monotonic()
            turn = max(self._next_send, now)
            self._next_send = turn + 1.0 / self.rate
        return not self._stopping.wait(turn - now)

    def _count_answer(self, status: int | None, error: str | None) -> None:
        if status is None and self._stopping.is_set():
            return  # cut off by stop(), not the service's doing
        with self._lock:
            if error is None:
                self._ok += 1
            else:
                self._failed += 1
                self._last_error = error
            if status is not None:
                self._answered.append(time.monotonic())

    def _forget_before(self, moment: float) -> None:
        while self._answered and self._answered[0] < moment:
            self._answered.popleft()


def _exchange(
    connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None
) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read().decode(errors="replace")


def _model_input(metadata: Any, width: int) -> _Input:
    """The one input of v2 model metadata, checked to take rows of `width` values."""
    inputs = metadata.get("inputs") if isinstance(metadata, dict) else None
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise ValueError(f"the model has {len(inputs or [])} inputs; a wine row fills one")
    tensor = inputs[0]
    shape = tensor.get("shape") or []
    if len(shape) != 2 or shape[1] not in (width, -1):
        raise ValueError(f"input {tensor.get('name')} has shape {shape}, not [-1, {width}]")
    return _Input(str(tensor["name"]), str(tensor.get("datatype", "FP32")), width)
