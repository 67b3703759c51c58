"""The inference server: Open Inference Protocol v2 routes for one model, and its lifecycle.

Routes (KServe's and Triton's REST API; `/versions/{v}` is optional where shown):
- GET /v2/health/live, /v2/health/ready (503 while not ready), GET /v2 (server metadata);
- GET /v2/models/{name}[/versions/{v}] (model metadata), .../ready;
- POST /v2/models/{name}[/versions/{v}]/infer;
- GET /metrics (Prometheus).

Inference requests are decoded at once, batched (see batching) and answered when their
batch ran; everything, onnxruntime included, runs on the event loop thread: a run at batch
1 takes a few microseconds, less than handing it to a thread would.

Lifecycle: ready once listening (the model was loaded and warmed up before). On SIGTERM or
SIGINT, readiness turns false at once while the server keeps answering for
`shutdown_delay` seconds, each response closing its connection, so load balancers and
Service endpoints stop sending; then it stops accepting, waits up to `drain_timeout` for
the requests in progress, flushes the request log and returns a summary.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import orjson

from gyre_runtime.result import RuntimeFailure
from gyre_runtime.serving.batching import Batcher
from gyre_runtime.serving.http import HttpServer, Request
from gyre_runtime.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gyre_runtime.serving.metrics import ServingMetrics
from gyre_runtime.serving.model import Array, ServedModel
from gyre_runtime.serving.protocol import Codec, InferRequest, ProtocolError, RunOutputs

if TYPE_CHECKING:
    from gyre_runtime.serving.request_log import RequestLog

SERVER_NAME = "gyre"
PLATFORM = "onnxruntime_onnx"
OCTET_STREAM = b"application/octet-stream"
# The longest onnxruntime error message passed on to a client.
MAX_ERROR_CHARS = 1000
_GET = (b"GET", b"HEAD")
_POST = (b"POST",)

Infer = InferRequest[Request]
Action = Callable[[Request], None]


@dataclass(frozen=True)
class ServerConfig:
    """How the server listens, batches and shuts down."""

    host: str
    port: int
    max_batch_rows: int = 256
    max_batch_delay: float = 0.0
    max_body_bytes: int = 64 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    shutdown_delay: float = 2.0
    drain_timeout: float = 20.0


class InferenceServer:
    """Serves one model over HTTP: routing, inference, metrics, request log, shutdown."""

    def __init__(
        self,
        model: ServedModel,
        config: ServerConfig,
        parameters: Mapping[str, Any] | None = None,
        request_log: RequestLog | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.ready = False
        self.in_flight = 0
        self.metrics = ServingMetrics(model.name, model.version, model.sha256, self._in_flight)
        self._codec = Codec(model)
        self._log = request_log
        self._id_prefix = uuid.uuid4().hex[:12]
        self._ids = 0
        self._batcher: Batcher[Infer] = Batcher(
            model.run,
            self._done,
            self.metrics.observe_batch,
            config.max_batch_rows,
            config.max_batch_delay,
        )
        self._model_metadata = orjson.dumps(
            {
                "name": model.name,
                "versions": [model.version],
                "platform": PLATFORM,
                "inputs": [tensor.to_json() for tensor in model.inputs],
                "outputs": [tensor.to_json() for tensor in model.outputs],
                "parameters": {"sha256": model.sha256, **(parameters or {})},
            }
        )
        self._server_metadata = orjson.dumps(
            {
                "name": SERVER_NAME,
                "version": package_version("gyre-operator"),
                "extensions": ["binary_tensor_data"],
            }
        )
        self._routes = self._route_table()
        self._paths = {
            path.decode(): route for path, route in self._route_table(quoted=False).items()
        }

    # Routing (the http.Handler interface)

    def handle(self, request: Request) -> None:
        """Route a request and answer it (inference answers come after their batch)."""
        route = self._routes.get(request.url)
        if route is None:
            route = self._resolve(request)
            if route is None:
                return
        methods, action = route
        if request.method in methods:
            action(request)
        else:
            allowed = ", ".join(method.decode() for method in methods)
            request.respond(
                405,
                orjson.dumps({"error": f"method not allowed here; use {allowed}"}),
                headers=b"allow: %s\r\n" % allowed.encode(),
            )

    def rejected(self, request: Request, status: int) -> None:
        """Count an inference request the HTTP layer refused (its body too large)."""
        route = self._routes.get(request.url)
        if route is not None and route[1] == self._infer:
            self.metrics.refused(status)

    def _route_table(self, quoted: bool = True) -> dict[bytes, tuple[tuple[bytes, ...], Action]]:
        name = self.model.name
        version = self.model.version
        if quoted:
            name, version = quote(name, safe=""), quote(version, safe="")
        routes: dict[bytes, tuple[tuple[bytes, ...], Action]] = {
            b"/v2/health/live": (_GET, self._live),
            b"/v2/health/ready": (_GET, self._ready),
            b"/v2": (_GET, self._server),
            b"/metrics": (_GET, self._metrics),
        }
        for base in (f"/v2/models/{name}", f"/v2/models/{name}/versions/{version}"):
            prefix = base.encode()
            routes[prefix] = (_GET, self._metadata)
            routes[prefix + b"/ready"] = (_GET, self._model_ready)
            routes[prefix + b"/infer"] = (_POST, self._infer)
        return routes

    def _resolve(self, request: Request) -> tuple[tuple[bytes, ...], Action] | None:
        """The route of a URL that is not in canonical form; None once answered 404."""
        url = request.url.decode("latin-1")
        try:
            # An absolute URL (http://host/path) names the same path.
            path = unquote(urlsplit(url).path, errors="replace")
        except ValueError:  # e.g. an unclosed IPv6 host
            request.error(400, f"malformed request target {url[:200]!r}")
            return None
        route = self._paths.get(path)
        if route is not None:
            return route
        request.error(404, self._not_found(path))
        return None

    def _not_found(self, path: str) -> str:
        parts = path.split("/")
        if len(parts) >= 4 and parts[:3] == ["", "v2", "models"]:
            if parts[3] != self.model.name:
                return f"unknown model {parts[3]!r}: this server serves {self.model.name!r}"
            if len(parts) >= 6 and parts[4] == "versions" and parts[5] != self.model.version:
                return (
                    f"model {self.model.name!r} has no version {parts[5]!r}: "
                    f"this server serves version {self.model.version!r}"
                )
        return f"no such endpoint: {path[:200]}"

    # Endpoints

    def _live(self, request: Request) -> None:
        request.respond(200, b'{"live":true}')

    def _ready(self, request: Request) -> None:
        if self.ready:
            request.respond(200, b'{"ready":true}')
        else:
            request.respond(503, b'{"ready":false}')

    def _server(self, request: Request) -> None:
        request.respond(200, self._server_metadata)

    def _metadata(self, request: Request) -> None:
        request.respond(200, self._model_metadata)

    def _model_ready(self, request: Request) -> None:
        body = orjson.dumps({"name": self.model.name, "ready": self.ready})
        request.respond(200 if self.ready else 503, body)

    def _metrics(self, request: Request) -> None:
        request.respond(200, self.metrics.exposition(), METRICS_CONTENT_TYPE)

    def _infer(self, request: Request) -> None:
        header_length = request.headers.get(b"inference-header-content-length")
        try:
            job = self._codec.decode(request.body, header_length, request)
        except ProtocolError as error:
            request.error(400, error.message)
            self.metrics.answered(400, time.perf_counter() - request.started)
            return
        self.in_flight += 1
        self._batcher.submit(job)

    def _done(
        self, jobs: list[Infer], result: list[Array] | Exception, feed: Mapping[str, Array]
    ) -> None:
        """Answer the requests of one run, count them, log them."""
        self.in_flight -= len(jobs)
        finished = time.perf_counter()
        metrics = self.metrics
        if isinstance(result, Exception):
            message = f"the model failed: {str(result)[:MAX_ERROR_CHARS]}"
            for job in jobs:
                job.origin.error(500, message)
                metrics.answered(500, finished - job.origin.started)
            return
        run = RunOutputs(result, stacked=len(jobs) > 1)
        encode = self._codec.encode
        start = 0
        for job in jobs:
            end = start + job.rows
            request = job.origin
            try:
                body, json_length = encode(job, run, start, end)
            # An output the encoder cannot write must not leave the client waiting.
            except Exception as error:
                print(f"encoding a response failed: {error!r}", file=sys.stderr, flush=True)
                request.error(500, "the server failed to encode the model's outputs")
                metrics.answered(500, finished - request.started)
                start = end
                continue
            if json_length is None:
                request.respond(200, body)
            else:
                header = b"inference-header-content-length: %d\r\n" % json_length
                request.respond(200, body, OCTET_STREAM, header)
            metrics.answered(200, finished - request.started)
            start = end
        if self._log is not None and self._log.sampled():
            self._record(jobs, feed, result)

    def _record(self, jobs: list[Infer], feed: Mapping[str, Array], outputs: list[Array]) -> None:
        """Log one run: one call for all its requests (a request the encoder failed on is
        logged too: the model answered it)."""
        assert self._log is not None
        ids = [job.id if job.id is not None else self._generated_id() for job in jobs]
        counts = np.fromiter((job.rows for job in jobs), dtype=np.int64, count=len(jobs))
        named = dict(zip(self.model.output_names, outputs, strict=True))
        self._log.record_run(ids, counts, self.model.version, feed, named, time.time())

    def _generated_id(self) -> str:
        # Unique per process start and request, for the log only; cheaper than uuid4.
        self._ids += 1
        return f"{self._id_prefix}-{self._ids}"

    def _in_flight(self) -> int:
        return self.in_flight

    # Lifecycle

    async def serve(self) -> dict[str, Any]:
        """Listen until SIGTERM or SIGINT, then drain and return a summary."""
        loop = asyncio.get_running_loop()
        config = self.config
        http = HttpServer(self, config.max_body_bytes, config.max_header_bytes)
        try:
            listener = await loop.create_server(
                http.protocol, config.host, config.port, reuse_address=True, backlog=4096
            )
        except OSError as error:
            raise RuntimeFailure(
                "PortUnavailable", f"cannot listen on {config.host}:{config.port}: {error}"
            ) from error
        started = time.monotonic()
        http.start_clock()
        if self._log is not None:
            self._log.start(loop)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        self.ready = True
        port = listener.sockets[0].getsockname()[1] if listener.sockets else config.port
        print(
            f"serving model {self.model.name!r} version {self.model.version!r} "
            f"({', '.join(self.model.providers)}) on {config.host}:{port}",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        self.ready = False
        http.draining = True
        await asyncio.sleep(config.shutdown_delay)
        listener.close()
        http.close_idle()
        deadline = loop.time() + config.drain_timeout
        while http.busy() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        unfinished = self.in_flight
        http.abort_all()
        http.stop_clock()
        if self._log is not None:
            await self._log.close()
        return self._summary(time.monotonic() - started, unfinished)

    def _summary(self, uptime: float, unfinished: int) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "model": self.model.name,
            "version": self.model.version,
            "sha256": self.model.sha256,
            "requests": self.metrics.requests,
            "errors": self.metrics.errors,
            "runs": self._batcher.runs,
            "unfinished": unfinished,
            "uptimeSeconds": round(uptime, 3),
        }
        if self._log is not None:
            summary["requestLog"] = {
                "rowsLogged": self._log.rows_logged,
                "filesWritten": self._log.files_written,
                "writeErrors": self._log.write_errors,
                "rowsDropped": self._log.rows_dropped,
            }
        return summary
