"""Benchmark: gyre-runtime serve beside kserve, FastAPI + uvicorn and onnxruntime, on one core.

Trains two seeded scikit-learn classifiers on make_classification data (20 features): a
100-tree RandomForestClassifier (`rf`) and a GradientBoostingClassifier (`gb`, 100 trees of
depth 3), exported as Gyre's trainer exports them (ONNX, no ZipMap, FP32 input `input`,
outputs `label` and `probabilities`). Every server serves the same file in turn, pinned to one
core with taskset while wrk (-t1) loads it from another core over 127.0.0.1:
  gyre        gyre-runtime serve with its request log on (--request-log-root file://<tmp>),
              and with --max-batch-size 1 at 1 connection, batch 1 (latency without batching);
  gyre-sampled  gyre-runtime serve logging a 10% sample of requests (--request-log-sample-rate
              0.1), a production setting when traffic is heavy;
  gyre-nolog  gyre-runtime serve without the request log;
  kserve      kserve's ModelServer (its defaults: uvicorn access log and a latency log line per
              request, both to a file; gRPC off) with a kserve.Model subclass around
              onnxruntime, at /v2/models/{name}/infer;
  fastapi     FastAPI on uvicorn (uvloop, httptools, no access log), one POST route: v2 JSON
              decode -> onnxruntime -> v2 JSON encode, both with orjson;
  ort         onnxruntime in this process, one thread on the servers' core, no HTTP: the ceiling.
Every onnxruntime session runs one thread. Requests: batch 1 JSON, batch 64 JSON and batch 64
binary (Triton's binary tensor extension, tensors in and out; the minimal FastAPI server speaks
JSON only). JSON bodies carry the float32 features as tritonclient writes them. Before the load,
one request per server and shape is checked against onnxruntime's own answer. Each figure is
one wrk run after a warm-up at the same connection count; requests/s, p50 and p99 come from
wrk's Lua `done` hook (latency from the first byte sent to the whole response read).

    python bench/serve.py [--duration 5] [--connections 1,8,32] [--models rf,gb]
                          [--servers gyre,gyre-sampled,gyre-nolog,kserve,fastapi,ort] [--quick]

Needs wrk (Debian: apt-get install -y wrk) and, for kserve and FastAPI,
pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import orjson

FEATURES = 20
BATCH = 64
SEED = 0
# Trees grown on this many rows (depth ~10) run in onnxruntime alone at about the reference's
# ~150k calls/s at batch 1 and ~280k rows/s at batch 64; more rows, deeper trees, slower runs.
TRAIN_ROWS = 300
REQUEST_ID = "bench"
MODEL_DESCRIPTIONS = {
    "rf": "RandomForestClassifier, 100 trees",
    "gb": "GradientBoostingClassifier, 100 trees of depth 3",
}
SERVERS = ("gyre", "gyre-sampled", "gyre-nolog", "kserve", "fastapi", "ort")
SERVER_LABELS = {"gyre-nobatch": "gyre --max-batch-size 1"}
# The packages each comparison server needs (gyre's are the project's own).
SERVER_PACKAGES = {"kserve": ("kserve",), "fastapi": ("fastapi", "uvicorn")}
STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0
WRK_TIMEOUT = "5s"
QUICK_DURATION = 1
WARM_UP_SECONDS = 1
OUTPUT_DATATYPES = {"int64": "INT64", "float32": "FP32"}
NUMPY_DTYPES = {"INT64": np.dtype("<i8"), "FP32": np.dtype("<f4")}

# Gyre's targets for gyre-runtime serve on one core, request log on, 32 connections.
TARGET_BATCH1_RPS = 60_000
TARGET_BATCH1_P99_MS = 2.0
TARGET_JSON64_ROWS = 250_000
TARGET_BINARY64_ROWS = 320_000
ANCHOR_KSERVE_RPS = 1_332
ANCHOR_KSERVE_FACTOR = 45
# Tolerance for "no worse than without batching" at 1 connection: wrk's run-to-run noise.
NO_WORSE_TOLERANCE = 0.05
# Figures measured on a machine like ours (100-tree RF, wrk -t1 -c32 on the other core).
REFERENCE = {
    ("kserve", "b1"): "reference: 1,332 req/s",
    ("kserve", "j64"): "reference: 43k rows/s",
    ("fastapi", "b1"): "reference: 4,386 req/s",
    ("fastapi", "j64"): "reference: 74k rows/s",
    ("ort", "b1"): "reference: ~150k calls/s",
    ("ort", "j64"): "reference: ~280k rows/s",
}


@dataclass(frozen=True)
class Shape:
    """A kind of request: its rows and whether tensors travel as raw bytes."""

    key: str
    label: str
    rows: int
    binary: bool


SHAPES = (
    Shape("b1", "batch 1 JSON", 1, False),
    Shape("j64", f"batch {BATCH} JSON", BATCH, False),
    Shape("bin64", f"batch {BATCH} binary", BATCH, True),
)


@dataclass(frozen=True)
class Load:
    """One measurement: requests completed in some seconds, errors and latency percentiles."""

    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        """Requests (or in-process calls) per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Row:
    """A line of the table: what was measured, the result (None when skipped), a note."""

    model: str
    server: str
    shape: Shape
    connections: int | None
    load: Load | None
    note: str = ""


@dataclass(frozen=True)
class Setup:
    """What every measurement shares: files, cores, durations."""

    work: Path
    server_core: int | None
    load_core: int | None
    duration: int
    warm_up: int


# ---- models and requests ----


def train_models(names: Sequence[str], work: Path) -> tuple[dict[str, Path], Any]:
    """Fit and export the chosen models; their ONNX files and the feature matrix (float32)."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    from gyre_runtime.training.export import export

    x, y = make_classification(
        n_samples=TRAIN_ROWS, n_features=FEATURES, n_informative=10, random_state=SEED
    )
    features = x.astype(np.float32)
    estimators = {
        "rf": lambda: RandomForestClassifier(n_estimators=100, random_state=SEED),
        "gb": lambda: GradientBoostingClassifier(n_estimators=100, random_state=SEED),
    }
    paths = {}
    for name in names:
        estimator = estimators[name]().fit(features, y)
        path = work / f"{name}.onnx"
        path.write_bytes(export(estimator, FEATURES))
        paths[name] = path
    return paths, features


def ort_session(path: Path) -> Any:
    """An onnxruntime session running on the calling thread only."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def request_body(features: Any, binary: bool) -> tuple[bytes, dict[str, str]]:
    """A v2 inference request for some rows, with an id; its body and headers."""
    tensor: dict[str, Any] = {"name": "input", "shape": list(features.shape), "datatype": "FP32"}
    if not binary:
        tensor["data"] = features.ravel().tolist()
        body = orjson.dumps({"id": REQUEST_ID, "inputs": [tensor]})
        return body, {"Content-Type": "application/json"}
    raw = np.ascontiguousarray(features, dtype="<f4").tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = orjson.dumps(
        {"id": REQUEST_ID, "inputs": [tensor], "parameters": {"binary_data_output": True}}
    )
    return header + raw, {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }


def decode_response(body: bytes, header_length: str | None) -> dict[str, Any]:
    """The outputs of a v2 response, JSON or binary, as arrays by name."""
    offset = int(header_length) if header_length else len(body)
    document = orjson.loads(body[:offset])
    outputs = {}
    for output in document["outputs"]:
        dtype = NUMPY_DTYPES[output["datatype"]]
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            array = np.asarray(output["data"], dtype=dtype)
        else:
            array = np.frombuffer(body, dtype=dtype, count=size // dtype.itemsize, offset=offset)
            offset += size
        outputs[output["name"]] = array.reshape(output["shape"])
    return outputs


def check_answer(url: str, body: bytes, headers: Mapping[str, str], expected: list[Any]) -> str:
    """Send one request; "" when the answer matches onnxruntime's, else what is wrong.

    Raises OSError while the server does not accept connections yet.
    """
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            content = response.read()
            header_length = response.headers.get("Inference-Header-Content-Length")
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}: {error.read()[:300].decode(errors='replace')}"
    try:
        outputs = decode_response(content, header_length)
        labels, probabilities = outputs["label"], outputs["probabilities"]
    except (KeyError, ValueError, TypeError) as error:
        return f"unreadable answer ({error!r}): {content[:300]!r}"
    if not np.array_equal(labels.ravel(), expected[0].ravel()):
        return "labels differ from onnxruntime's"
    if not np.allclose(probabilities, expected[1], atol=1e-5):
        return "probabilities differ from onnxruntime's"
    return ""


# ---- load with wrk ----


LUA = """\
local file = assert(io.open({body}, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %.0f %.0f %.0f %.0f %.1f %.1f\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def write_lua(work: Path, shape: Shape, body: bytes, headers: Mapping[str, str]) -> Path:
    """A wrk script POSTing one request body over and over, reporting in `done`."""
    body_path = work / f"{shape.key}.body"
    body_path.write_bytes(body)
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    script = work / f"{shape.key}.lua"
    script.write_text(LUA.format(body=json.dumps(str(body_path)), headers=lines))
    return script


def pinned(core: int | None) -> list[str]:
    """The taskset prefix that pins a command to one core (none when pinning is off)."""
    return [] if core is None else ["taskset", "-c", str(core)]


def run_wrk(setup: Setup, url: str, script: Path, connections: int, seconds: int) -> Load:
    """One wrk run of a few seconds; what its `done` hook reported."""
    command = [
        *pinned(setup.load_core), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
        "--timeout", WRK_TIMEOUT, "-s", str(script), url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    report = [line for line in result.stdout.splitlines() if line.startswith("BENCH ")]
    if result.returncode != 0 or not report:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    requests, micros, status, sockets, p50, p99 = (float(v) for v in report[-1].split()[1:])
    return Load(int(requests), micros / 1e6, int(status), int(sockets), p50 / 1e3, p99 / 1e3)


# ---- servers ----


@dataclass
class Server:
    """A server process started by this benchmark."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(kind: str, model: Path, name: str, port: int, work: Path) -> list[str]:
    """The command line of one server (gyre, gyre-sampled, gyre-nolog, gyre-nobatch, kserve
    or fastapi)."""
    if kind.startswith("gyre"):
        command = [
            sys.executable, "-m", "gyre_runtime.cli", "serve", "--model", str(model),
            "--name", name, "--host", "127.0.0.1", "--port", str(port), "--shutdown-delay", "0",
        ]  # fmt: skip
        if kind != "gyre-nolog":
            root = work / f"requests-{kind}-{name}"
            command += ["--request-log-root", root.as_uri(), "--service", "bench"]
        if kind == "gyre-sampled":
            command += ["--request-log-sample-rate", "0.1"]
        if kind == "gyre-nobatch":
            command += ["--max-batch-size", "1"]
        return command
    script = str(Path(__file__).resolve())
    return [sys.executable, script, "--child", kind, str(model), name, str(port)]


@contextmanager
def running(
    setup: Setup, kind: str, model: Path, name: str, probe: tuple[bytes, dict[str, str], Any]
) -> Iterator[Server]:
    """Start a server pinned to the servers' core, wait until it answers, stop it after."""
    port = free_port()
    log = setup.work / f"{kind}-{name}.log"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GYRE_TERMINATION_MESSAGE_PATH": str(setup.work / f"{kind}-{name}.summary"),
    }
    command = [*pinned(setup.server_core), *server_command(kind, model, name, port, setup.work)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(kind, process, f"http://127.0.0.1:{port}/v2/models/{name}/infer", log)
    try:
        wait_ready(server, *probe)
        yield server
    finally:
        stop(process)


def wait_ready(server: Server, body: bytes, headers: dict[str, str], expected: Any) -> None:
    """Until the server answers a request right; RuntimeError if it exits or answers wrong."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {tail(server.log)}")
        try:
            problem = check_answer(server.url, body, headers, expected)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not start: {tail(server.log)}") from None
            time.sleep(0.2)
            continue
        if problem:
            raise RuntimeError(f"{server.name} answered wrong: {problem}")
        return


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the process outlives STOP_TIMEOUT."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tail(log: Path, chars: int = 1500) -> str:
    """The end of a server's log."""
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def gyre_summary(setup: Setup, kind: str, name: str) -> str:
    """What a stopped gyre-runtime serve reported: requests per run and its request log."""
    path = setup.work / f"{kind}-{name}.summary"
    label = f"{SERVER_LABELS.get(kind, kind)} on {name}"
    if not path.exists():
        return f"{label}: no summary"
    summary = json.loads(path.read_text())
    if "requests" not in summary:
        return f"{label}: {summary}"
    requests, runs = summary["requests"], max(1, summary["runs"])
    text = (
        f"{label}: {requests:,} requests in {runs:,} model runs "
        f"({requests / runs:.1f} requests/run), {summary['errors']} errors"
    )
    log = summary.get("requestLog")
    if log:
        text += (
            f"; request log: {log['rowsLogged']:,} rows in {log['filesWritten']:,} files, "
            f"{log['rowsDropped']:,} dropped, {log['writeErrors']} write errors"
        )
    return text


# ---- the comparison servers' own processes ----


def serve_kserve(model: Path, name: str, port: int) -> None:
    """kserve's ModelServer with a kserve.Model around onnxruntime (this process, blocking)."""
    # kserve parses sys.argv when imported: keep the benchmark's arguments away from it.
    sys.argv = sys.argv[:1]
    import kserve
    from kserve.utils.numpy_codec import from_np_dtype

    class OnnxModel(kserve.Model):  # type: ignore[misc]
        """One ONNX file run by onnxruntime, answering the v2 protocol."""

        def __init__(self) -> None:
            super().__init__(name)
            self.session = ort_session(model)
            self.output_names = [output.name for output in self.session.get_outputs()]
            self.ready = True

        def predict(
            self,
            payload: kserve.InferRequest,
            headers: dict[str, str] | None = None,
            response_headers: dict[str, str] | None = None,
        ) -> kserve.InferResponse:
            """Run the first input; every output, binary when the request asks so."""
            tensor = payload.inputs[0]
            arrays = self.session.run(None, {tensor.name: tensor.as_numpy()})
            binary = payload.use_binary_outputs
            outputs = []
            for output_name, array in zip(self.output_names, arrays, strict=True):
                output = kserve.InferOutput(
                    name=output_name, shape=list(array.shape), datatype=from_np_dtype(array.dtype)
                )
                output.set_data_from_numpy(array, binary_data=binary)
                outputs.append(output)
            return kserve.InferResponse(
                response_id=payload.id,
                model_name=self.name,
                infer_outputs=outputs,
                use_binary_outputs=binary,
            )

    server = kserve.ModelServer(http_port=port, enable_grpc=False, workers=1, grace_period=1)
    server.start([OnnxModel()])


def serve_fastapi(model: Path, name: str, port: int) -> None:
    """A minimal FastAPI app on uvicorn: one POST route (this process, blocking)."""
    import uvicorn
    from fastapi import FastAPI, Request, Response

    session = ort_session(model)
    output_names = [output.name for output in session.get_outputs()]
    app = FastAPI()

    async def infer(request: Request) -> Response:
        payload = orjson.loads(await request.body())
        tensor = payload["inputs"][0]
        features = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        arrays = session.run(None, {tensor["name"]: features})
        outputs = [
            {
                "name": output_name,
                "datatype": OUTPUT_DATATYPES[array.dtype.name],
                "shape": list(array.shape),
                "data": array.ravel(),
            }
            for output_name, array in zip(output_names, arrays, strict=True)
        ]
        answer = {"id": payload.get("id", ""), "model_name": name, "outputs": outputs}
        return Response(
            orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY),
            media_type="application/json",
        )

    # Postponed annotations leave FastAPI the string "Request", which it cannot resolve from
    # this module's globals: it would take the request for a query parameter.
    infer.__annotations__["request"] = Request
    app.post(f"/v2/models/{name}/infer", response_model=None)(infer)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


# ---- measurements ----


def measure_ort(setup: Setup, model: Path, features: Any, rows: int) -> Load:
    """onnxruntime in this thread, pinned to the servers' core: calls/s and call latency."""
    session = ort_session(model)
    feed = {"input": np.ascontiguousarray(features[:rows])}
    previous = os.sched_getaffinity(0)
    if setup.server_core is not None:
        os.sched_setaffinity(0, {setup.server_core})
    try:
        end = time.perf_counter() + setup.warm_up
        while time.perf_counter() < end:
            session.run(None, feed)
        durations = []
        started = now = time.perf_counter_ns()
        end_ns = started + setup.duration * 1_000_000_000
        while now < end_ns:
            session.run(None, feed)
            after = time.perf_counter_ns()
            durations.append(after - now)
            now = after
    finally:
        os.sched_setaffinity(0, previous)
    p50, p99 = np.percentile(durations, [50, 99]) / 1e6
    return Load(len(durations), (now - started) / 1e9, 0, 0, float(p50), float(p99))


def measure_server(
    setup: Setup, server: Server, scripts: Mapping[str, Path], shapes: Sequence[Shape],
    connections: Sequence[int], model: str, table: list[Row],
) -> None:  # fmt: skip
    """Warm up then measure every shape at every connection count; rows added to the table."""
    for shape in shapes:
        for count in connections:
            run_wrk(setup, server.url, scripts[shape.key], count, setup.warm_up)
            load = run_wrk(setup, server.url, scripts[shape.key], count, setup.duration)
            table.append(Row(model, server.name, shape, count, load))


def measure_model(
    setup: Setup, options: argparse.Namespace, name: str, path: Path, features: Any,
    servers: Sequence[str], notes: list[str],
) -> list[Row]:  # fmt: skip
    """Every chosen server on one model, one after the other."""
    session = ort_session(path)
    probes, scripts = {}, {}
    for shape in SHAPES:
        rows = features[: shape.rows]
        body, headers = request_body(rows, shape.binary)
        probes[shape.key] = (body, headers, session.run(None, {"input": rows}))
        scripts[shape.key] = write_lua(setup.work / name, shape, body, headers)
    table: list[Row] = []
    for kind in servers:
        if kind == "ort":
            for shape in SHAPES[:2]:
                load = measure_ort(setup, path, features, shape.rows)
                table.append(Row(name, kind, shape, None, load, "in-process, no HTTP"))
            continue
        shapes = SHAPES if kind != "fastapi" else SHAPES[:2]
        try:
            with running(setup, kind, path, name, probes["b1"]) as server:
                for shape in shapes[1:]:
                    problem = check_answer(server.url, *probes[shape.key])
                    if problem:
                        raise RuntimeError(f"{kind} answered {shape.label} wrong: {problem}")
                measure_server(setup, server, scripts, shapes, options.connections, name, table)
            if kind == "gyre" and 1 in options.connections:
                with running(setup, "gyre-nobatch", path, name, probes["b1"]) as server:
                    measure_server(setup, server, scripts, SHAPES[:1], [1], name, table)
        except (RuntimeError, subprocess.SubprocessError) as error:
            print(f"  {kind} on {name} failed: {error}", flush=True)
            table.append(Row(name, kind, SHAPES[0], None, None, f"failed: {str(error)[:80]}"))
            continue
        if kind.startswith("gyre"):
            notes.append(gyre_summary(setup, kind, name))
            if kind == "gyre" and 1 in options.connections:
                notes.append(gyre_summary(setup, "gyre-nobatch", name))
        if kind == "fastapi":
            note = "skipped: the minimal FastAPI server speaks JSON only"
            table += [Row(name, kind, SHAPES[2], None, None, note)]
    return table


# ---- the table ----


def fmt_count(value: float) -> str:
    """A rate with thousands separators."""
    return f"{value:,.0f}"


def verdict(ok: bool) -> str:
    """How a figure stands against its target."""
    return "meets" if ok else "MISSES"


def find(table: Sequence[Row], model: str, server: str, shape: str, conns: int) -> Load | None:
    """The measurement of one cell of the table, if it was made."""
    for row in table:
        if (row.model, row.server, row.shape.key, row.connections) == (model, server, shape, conns):
            return row.load
    return None


def anchor_notes(table: list[Row]) -> list[str]:
    """Put each anchor beside its figure; the verdict lines for the end of the report."""
    verdicts = []
    for row in table:
        load, shape = row.load, row.shape.key
        if load is None:
            continue
        rows_per_second = load.per_second * row.shape.rows
        note = ""
        if row.server == "gyre" and row.connections == 32:
            if shape == "b1":
                kserve = find(table, row.model, "kserve", "b1", 32)
                factor = (
                    f"; {load.per_second / kserve.per_second:.0f}x kserve here" if kserve else ""
                )
                ok = load.per_second >= TARGET_BATCH1_RPS and load.p99_ms < TARGET_BATCH1_P99_MS
                note = (
                    f"target >= {TARGET_BATCH1_RPS:,} req/s, p99 < {TARGET_BATCH1_P99_MS:g} ms "
                    f"({ANCHOR_KSERVE_FACTOR}x kserve's {ANCHOR_KSERVE_RPS:,}): "
                    f"{verdict(ok)}{factor}"
                )
            elif shape == "j64":
                ok = rows_per_second >= TARGET_JSON64_ROWS
                note = f"target >= {TARGET_JSON64_ROWS // 1000}k rows/s: {verdict(ok)}"
            else:
                ok = rows_per_second >= TARGET_BINARY64_ROWS
                note = f"target >= {TARGET_BINARY64_ROWS // 1000}k rows/s: {verdict(ok)}"
            verdicts.append(f"{row.model} {row.shape.label}, 32 connections: {note}")
        elif row.server == "gyre-nobatch":
            batched = find(table, row.model, "gyre", "b1", 1)
            if batched is not None:
                ok = batched.p50_ms <= load.p50_ms * (1 + NO_WORSE_TOLERANCE)
                note = (
                    f"target: gyre at 1 connection no slower: p50 {batched.p50_ms:.3f} vs "
                    f"{load.p50_ms:.3f} ms, p99 {batched.p99_ms:.3f} vs {load.p99_ms:.3f} ms: "
                    f"{verdict(ok)} (p50 within {NO_WORSE_TOLERANCE:.0%})"
                )
                verdicts.append(f"{row.model} batch 1, 1 connection: {note}")
        elif row.model == "rf" and (row.connections in (32, None)):
            note = REFERENCE.get((row.server, shape), "")
        if load.status_errors or load.socket_errors:
            note = f"{load.status_errors} non-2xx, {load.socket_errors} socket errors; " + note
        row.note = "; ".join(part for part in (row.note, note) if part)
    return verdicts


def print_table(table: list[Row]) -> None:
    """One table, a block per model."""
    header = ("server", "request", "conns", "req/s", "rows/s", "p50 ms", "p99 ms", "note / anchor")
    lines = [header]
    previous = None
    for row in table:
        if row.model != previous:
            lines.append((f"[{row.model}: {MODEL_DESCRIPTIONS[row.model]}]", *[""] * 7))
            previous = row.model
        server = SERVER_LABELS.get(row.server, row.server)
        conns = "-" if row.connections is None else str(row.connections)
        request = f"batch {row.shape.rows}" if row.server == "ort" else row.shape.label
        if row.load is None:
            lines.append((server, request, conns, "-", "-", "-", "-", row.note))
            continue
        load = row.load
        lines.append(
            (
                server,
                request,
                conns,
                fmt_count(load.per_second),
                fmt_count(load.per_second * row.shape.rows),
                f"{load.p50_ms:.3f}",
                f"{load.p99_ms:.3f}",
                row.note,
            )
        )
    widths = [max(len(line[i]) for line in lines if not line[0].startswith("[")) for i in range(7)]
    for line in lines:
        if line[0].startswith("["):
            print(line[0])
            continue
        cells = [
            cell.ljust(width) if i < 3 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line[:7], widths, strict=True))
        ]
        print("  ".join([*cells, line[7]]).rstrip())


# ---- the run ----


def missing_packages(servers: Sequence[str]) -> dict[str, list[str]]:
    """The comparison servers whose packages are not installed, with the missing names."""
    missing = {}
    for server in servers:
        absent = [p for p in SERVER_PACKAGES.get(server, ()) if importlib.util.find_spec(p) is None]
        if absent:
            missing[server] = absent
    return missing


def cores() -> tuple[int | None, int | None, str]:
    """The servers' core, the load generator's core and how they were chosen."""
    available = sorted(os.sched_getaffinity(0))
    if shutil.which("taskset") is None:
        return None, None, "taskset not found (util-linux): nothing pinned"
    if len(available) < 2:
        return available[0], available[0], f"one CPU only: server and wrk share core {available[0]}"
    return available[0], available[1], f"server on core {available[0]}, wrk on {available[1]}"


def package_version(name: str) -> str:
    """An installed package's version, or "-"."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument(
        "--connections", default="1,8,32", help="wrk connection counts, comma-separated"
    )
    parser.add_argument("--models", default="rf,gb", help="of rf, gb; comma-separated")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_DURATION} s per measurement: a smoke test"
    )
    options = parser.parse_args(argv)
    options.connections = [int(count) for count in options.connections.split(",")]
    options.models = options.models.split(",")
    options.servers = options.servers.split(",")
    for name, chosen, allowed in (
        ("model", options.models, MODEL_DESCRIPTIONS),
        ("server", options.servers, SERVERS),
    ):
        unknown = [value for value in chosen if value not in allowed]
        if unknown:
            parser.error(f"unknown {name}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    if options.duration < 1 or min(options.connections) < 1:
        parser.error("--duration and --connections must be at least 1")
    if options.quick:
        options.duration = QUICK_DURATION
    return options


def main() -> int:
    """Train the models, measure every chosen server on each, print the table."""
    if sys.argv[1:2] == ["--child"]:
        kind, model, name, port = sys.argv[2:6]
        serve = {"kserve": serve_kserve, "fastapi": serve_fastapi}[kind]
        serve(Path(model), name, int(port))
        return 0
    options = parse_options()
    servers = list(options.servers)
    for server, absent in missing_packages(servers).items():
        print(f"skipping {server}: {', '.join(absent)} not installed (pip install -e '.[bench]')")
        servers.remove(server)
    if shutil.which("wrk") is None:
        print("skipping every HTTP server: wrk not found (Debian: apt-get install -y wrk)")
        servers = [server for server in servers if server == "ort"]
    server_core, load_core, pinning = cores()
    with tempfile.TemporaryDirectory(prefix="gyre-bench-serve-") as workdir:
        work = Path(workdir)
        setup = Setup(work, server_core, load_core, options.duration, WARM_UP_SECONDS)
        started = time.perf_counter()
        paths, features = train_models(options.models, work)
        print(
            f"models {', '.join(options.models)} trained and exported in "
            f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs, {pinning}; "
            f"{options.duration} s per figure after {WARM_UP_SECONDS} s of warm-up",
            flush=True,
        )
        table: list[Row] = []
        notes: list[str] = []
        for name in options.models:
            (work / name).mkdir()
            table += measure_model(setup, options, name, paths[name], features, servers, notes)
    versions = ", ".join(
        f"{package} {package_version(package)}"
        for package in ("onnxruntime", "kserve", "fastapi", "uvicorn", "orjson", "uvloop")
    )
    verdicts = anchor_notes(table)
    print(
        f"\nServing the same ONNX file on one core ({pinning}); wrk -t1, "
        f"{options.duration} s per figure; {versions}."
    )
    print("Request log of gyre: file:// in a temporary directory. Latency in ms.\n")
    print_table(table)
    if notes:
        print("\n" + "\n".join(notes))
    if verdicts:
        print("\nanchors (gyre-runtime serve, request log on):")
        print("\n".join(f"  {line}" for line in verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
