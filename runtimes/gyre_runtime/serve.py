"""`gyre-runtime serve`: serve one ONNX model over the Open Inference Protocol v2 (REST).

The init container (`gyre-runtime fetch`) put the model file in the pod; this command
checks its digest against the ModelVersion's, loads and warms it up, then serves until
SIGTERM (see gyre_runtime.serving.server). It exits 0 with a summary of what it served,
or 1 with `DigestMismatch`, `InvalidModel`, `InvalidArgument` or `PortUnavailable`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gyre_runtime.arguments import json_object
from gyre_runtime.result import RuntimeFailure
from gyre_runtime.serving import model as served_model
from gyre_runtime.serving.server import InferenceServer, ServerConfig

if TYPE_CHECKING:
    from gyre_runtime.serving.request_log import RequestLog

MIB = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments the operator's Deployment builder passes to `gyre-runtime serve`."""
    model = parser.add_argument_group("model")
    model.add_argument("--model", required=True, type=Path, help="the local ONNX file")
    model.add_argument("--sha256", help="the registered digest; the file must have it")
    model.add_argument("--name", required=True, help="the model's name in the API")
    model.add_argument("--version", default="1", help="the model version served (default 1)")
    model.add_argument(
        "--parameters", help="JSON object added to the model metadata's parameters (lineage)"
    )
    model.add_argument(
        "--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)"
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="0.0.0.0", help="address to listen on")
    server.add_argument(
        "--port", type=int, default=8080, help="port to listen on (the PORT variable wins)"
    )
    server.add_argument(
        "--max-batch-size",
        type=int,
        # Large enough that several 64-row requests share one onnxruntime run: one run per
        # request would cap throughput at onnxruntime's 64-row rate.
        default=256,
        help="rows that trigger a batch at once (default 256)",
    )
    server.add_argument(
        "--max-batch-delay",
        type=float,
        default=0.0,
        help="ms a batch may wait for more requests (0: until the event loop's pass ends)",
    )
    server.add_argument(
        "--max-body-bytes", type=int, default=64 * MIB, help="largest request body accepted"
    )
    server.add_argument(
        "--max-header-bytes", type=int, default=16 * 1024, help="largest request head accepted"
    )
    server.add_argument(
        "--shutdown-delay",
        type=float,
        default=2.0,
        help="seconds served after SIGTERM while endpoints stop sending (default 2)",
    )
    server.add_argument(
        "--drain-timeout",
        type=float,
        default=20.0,
        help="seconds to finish requests in progress after that (default 20)",
    )
    log = parser.add_argument_group("request log (for drift checks)")
    log.add_argument("--request-log-root", help="artifact root URI; no logging without it")
    log.add_argument("--service", help="the InferenceService, for the log's path")
    log.add_argument(
        "--pod",
        default=os.environ.get("HOSTNAME") or socket.gethostname(),
        help="this pod's name (default $HOSTNAME)",
    )
    log.add_argument("--request-log-sample-rate", type=float, default=1.0)
    log.add_argument("--request-log-max-rows", type=int, default=1000)
    log.add_argument(
        "--request-log-max-interval", type=float, default=10.0, help="seconds between writes"
    )
    log.add_argument("--features", help="comma-separated feature names of the 2-D input")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load the model, serve it until SIGTERM, return a summary."""
    config = _config(args)
    parameters = json_object("--parameters", args.parameters) or {}
    model = served_model.load(args.model, args.name, args.version, args.sha256, args.threads)
    server = InferenceServer(model, config, parameters, _request_log(args))
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(server.serve())


def _config(args: argparse.Namespace) -> ServerConfig:
    port = args.port
    if os.environ.get("PORT"):
        try:
            port = int(os.environ["PORT"])
        except ValueError:
            raise RuntimeFailure(
                "InvalidArgument", f"PORT must be a number, not {os.environ['PORT']!r}"
            ) from None
    minimums = {
        "--max-batch-size": (args.max_batch_size, 1),
        "--max-batch-delay": (args.max_batch_delay, 0),
        "--max-body-bytes": (args.max_body_bytes, 0),
        "--max-header-bytes": (args.max_header_bytes, 256),
        "--shutdown-delay": (args.shutdown_delay, 0),
        "--drain-timeout": (args.drain_timeout, 0),
        "--threads": (args.threads, 1),
    }
    for flag, (value, minimum) in minimums.items():
        if value < minimum:
            raise RuntimeFailure(
                "InvalidArgument", f"{flag} must be at least {minimum}, not {value}"
            )
    if not 0 <= port <= 65535:
        raise RuntimeFailure("InvalidArgument", f"port {port} is not between 0 and 65535")
    return ServerConfig(
        host=args.host,
        port=port,
        max_batch_rows=args.max_batch_size,
        max_batch_delay=args.max_batch_delay / 1000,
        max_body_bytes=args.max_body_bytes,
        max_header_bytes=args.max_header_bytes,
        shutdown_delay=args.shutdown_delay,
        drain_timeout=args.drain_timeout,
    )


def _request_log(args: argparse.Namespace) -> RequestLog | None:
    if not args.request_log_root:
        return None
    if not args.service:
        raise RuntimeFailure("InvalidArgument", "--request-log-root needs --service")
    features = [name.strip() for name in args.features.split(",")] if args.features else None
    if features is not None and not all(features):
        raise RuntimeFailure("InvalidArgument", f"--features has an empty name: {args.features!r}")
    # pyarrow loads only when there is a log to write.
    from gyre_runtime.serving.request_log import RequestLog

    try:
        return RequestLog(
            args.request_log_root,
            args.service,
            args.pod,
            features=features,
            max_rows=args.request_log_max_rows,
            max_interval=args.request_log_max_interval,
            sample_rate=args.request_log_sample_rate,
        )
    except ValueError as error:
        raise RuntimeFailure("InvalidArgument", f"request log: {error}") from error


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop
