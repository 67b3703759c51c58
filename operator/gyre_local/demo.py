"""`gyre local demo`: the local cluster with Gyre's CRDs, data and examples, and the operator on it.

It uses Gyre as a user would: the CRDs come from `gyre crds`, the operator runs as
`gyre operator` in a subprocess, and progress is read from the objects' status by watching them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

from gyre_local.cluster import LocalCluster
from gyre_local.controllers.informer import EventHandler, watch_forever
from gyre_local.milestones import DEMO_TARGETS, milestones
from gyre_local.store.builtins import ResourceType

EXAMPLES_DIR = Path("examples")
NAMESPACE = "default"
SERVED_MODEL = "wine"  # the example InferenceService, named after its model
OPERATOR_STOP_GRACE = 5.0
# How long an event wait blocks before checking that the operator still runs.
_LIVENESS_INTERVAL = 0.5

Event = tuple[str, Mapping[str, Any]]


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


class DemoTimeout(DemoError):
    """Not every milestone was reached in time."""


def manifests(directory: Path) -> list[dict[str, Any]]:
    """The objects of every YAML file in a directory, in file name order."""
    if not directory.is_dir():
        raise DemoError(
            f"no examples directory at {directory.resolve()}: run the demo from the Gyre "
            "repository or pass --examples DIR"
        )
    return [
        doc
        for path in sorted(directory.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def installed_command(name: str) -> str:
    """An installed console script: the one beside this Python, else the one on PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise DemoError(f"the {name} command is not installed: pip install 'gyre-operator[local]'")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_wine_csv(path: Path) -> None:
    """Write scikit-learn's wine data set as CSV: a header of the 13 feature names as sklearn
    names them and `target`, then one row per sample."""
    from sklearn.datasets import load_wine  # type: ignore[import-untyped]

    wine = load_wine()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*wine.feature_names, "target"])
        for features, label in zip(wine.data.tolist(), wine.target.tolist(), strict=True):
            writer.writerow([*features, label])


def source_path(cluster: LocalCluster, namespace: str, uri: str) -> Path:
    """The local file a pod of the namespace reads for a pvc://<claim>/<path> data URI."""
    scheme, _, rest = uri.partition("://")
    claim, _, path = rest.partition("/")
    if scheme != "pvc" or not claim or not path:
        raise DemoError(f"the demo writes its data into a claim, pvc://<claim>/<path>, not {uri}")
    return cluster.kubelet.claim_directory(namespace, claim) / path


def write_demo_data(cluster: LocalCluster, examples: list[dict[str, Any]]) -> Path | None:
    """Write the wine data where the example Dataset points; returns the file, if one."""
    kind, name = DEMO_TARGETS[0]
    for obj in examples:
        metadata = obj.get("metadata") or {}
        if obj.get("kind") == kind and metadata.get("name") == name:
            uri = obj["spec"]["source"]["uri"]
            path = source_path(cluster, metadata.get("namespace", NAMESPACE), uri)
            write_wine_csv(path)
            return path
    return None


def custom_types(cluster: LocalCluster) -> dict[str, ResourceType]:
    """The resource types the cluster serves from CRDs, by kind."""
    store = cluster.store
    return {t.kind: t for t in cluster.call(store.resource_types) if not store.is_builtin(t)}


def apply(cluster: LocalCluster, objects: list[dict[str, Any]]) -> None:
    """Create each object in the cluster (in `default` unless it names a namespace)."""
    plurals = {(t.group, t.kind): t.plural for t in cluster.call(cluster.store.resource_types)}
    for obj in objects:
        group = str(obj["apiVersion"]).rpartition("/")[0]
        namespace = (obj.get("metadata") or {}).get("namespace", NAMESPACE)
        plural = plurals[(group, obj["kind"])]
        cluster.call(cluster.store.create, group, plural, namespace, obj)


def start_operator(
    gyre: str, cluster: LocalCluster, *, metrics_port: int, health_port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start `gyre operator` against the cluster, its output going to log_path."""
    command = [
        gyre, "operator",
        "--kubeconfig", str(cluster.kubeconfig_path),
        "--metrics-port", str(metrics_port),
        "--health-port", str(health_port),
        "--artifact-root", (cluster.state_dir / "artifacts").as_uri(),
        "--log-format", "plain",
    ]  # fmt: skip
    with log_path.open("wb") as output:
        # Its own session: a Ctrl-C reaches the demo only, which then stops it in order.
        return subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_operator(operator: subprocess.Popen[bytes]) -> None:
    """SIGTERM the operator, then SIGKILL it if it is still there after a few seconds."""
    if operator.poll() is not None:
        return
    operator.terminate()
    try:
        operator.wait(OPERATOR_STOP_GRACE)
    except subprocess.TimeoutExpired:
        operator.kill()
        operator.wait()


class ObjectWatches:
    """List+watch of resource types in the cluster's event loop, feeding the (kind, object)
    events of one namespace into a queue that the demo's thread reads."""

    def __init__(self, cluster: LocalCluster, types: list[ResourceType], namespace: str) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self._cluster = cluster
        self._tasks = [
            cluster.call(
                asyncio.create_task,
                watch_forever(cluster.store, t.group, t.plural, self._handler(t.kind, namespace)),
            )
            for t in types
        ]

    def _handler(self, kind: str, namespace: str) -> EventHandler:
        def handle(event_type: str, obj: dict[str, Any]) -> None:
            if event_type != "DELETED" and obj["metadata"].get("namespace") == namespace:
                self.events.put((kind, obj))

        return handle

    def stop(self) -> None:
        """Stop every watch."""
        for task in self._tasks:
            self._cluster.call(task.cancel)


def until(
    events: queue.Queue[Event], deadline: float, operator: subprocess.Popen[bytes]
) -> Iterator[Event]:
    """Events from a queue until the monotonic deadline (then DemoTimeout); DemoError when the
    operator exits meanwhile."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DemoTimeout("not every milestone was reached in time")
        if operator.poll() is not None:
            raise DemoError(f"the operator exited with status {operator.returncode}")
        try:
            event = events.get(timeout=min(remaining, _LIVENESS_INTERVAL))
        except queue.Empty:
            continue
        yield event


def report_milestones(events: Iterator[Event], started: float, console: Console) -> bool:
    """Print a line per milestone with the seconds since `started`; True when every followed
    object reached its goal, False at the first failure."""
    for reached in milestones(events):
        elapsed = time.monotonic() - started
        mark = "[red]✗[/]" if reached.failed else "[green]✓[/]"
        console.print(f"{mark} {elapsed:6.1f}s  {escape(reached.text)}")
        if reached.failed:
            return False
    return True


def curl_line(url: str, model: str, row: list[float]) -> str:
    """A ready-to-paste curl command that asks the served model for one prediction."""
    body = json.dumps(
        {"inputs": [{"name": "input", "shape": [1, len(row)], "datatype": "FP32", "data": row}]},
        separators=(",", ":"),
    )
    return (
        f"curl -s -X POST {url}/v2/models/{model}/infer "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )


def _show_service(cluster: LocalCluster, console: Console) -> None:
    try:
        url = cluster.service_url(NAMESPACE, SERVED_MODEL)
    except LookupError:
        return
    from sklearn.datasets import load_wine

    row = [float(v) for v in load_wine().data[0]]
    console.print(f"InferenceService {SERVED_MODEL} answers at {url}; try:")
    console.print(escape(curl_line(url, SERVED_MODEL, row)), highlight=False)


def run(args: argparse.Namespace) -> int:
    """Run the demo: until Ctrl-C or SIGTERM, or with --exit-when-done until the milestones."""
    console = Console(soft_wrap=True)
    previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _run(args, console)
    except KeyboardInterrupt:
        return 0
    except DemoError as error:
        console.print(f"[red]gyre local demo:[/] {escape(str(error))}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


def _run(args: argparse.Namespace, console: Console) -> int:
    examples = manifests(args.examples)
    gyre = installed_command("gyre")
    state_dir = (args.state_dir or Path(tempfile.mkdtemp(prefix="gyre-demo-"))).resolve()
    with tempfile.TemporaryDirectory(prefix="gyre-crds-") as crd_dir:
        generated = subprocess.run(
            [gyre, "crds", "--output", crd_dir], capture_output=True, text=True, check=False
        )
        if generated.returncode != 0:
            raise DemoError(f"{gyre} crds failed: {generated.stderr.strip()}")
        cluster = LocalCluster(
            kubelet=args.kubelet, port=args.port, state_dir=state_dir, crds=[crd_dir]
        )
        cluster.start()
    operator: subprocess.Popen[bytes] | None = None
    watches: ObjectWatches | None = None
    try:
        console.print(f"gyre local cluster ({args.kubelet} kubelet) at {cluster.url}")
        data = write_demo_data(cluster, examples)
        if data is not None:
            console.print(f"wine data set written to {data}")
        log_path = state_dir / "operator.log"
        operator = start_operator(
            gyre,
            cluster,
            metrics_port=args.metrics_port or free_port(),
            health_port=args.health_port or free_port(),
            log_path=log_path,
        )
        console.print(f"operator started, its log: {log_path}")
        apply(cluster, examples)
        started = time.monotonic()
        console.print(f"applied {len(examples)} example objects; following their progress")
        types = custom_types(cluster)
        watches = ObjectWatches(cluster, [types[kind] for kind, _ in DEMO_TARGETS], NAMESPACE)
        try:
            done = report_milestones(
                until(watches.events, started + args.timeout, operator), started, console
            )
        except DemoTimeout:
            console.print(
                f"[yellow]not every milestone within {args.timeout:g} s[/]; see {log_path}"
            )
            done = False
        if done:
            _show_service(cluster, console)
        if args.exit_when_done:
            return 0 if done else 1
        console.print(
            f"In another shell:\n  export KUBECONFIG={cluster.kubeconfig_path}\n"
            "  kubectl get gyre\nCtrl-C stops the demo."
        )
        status = operator.wait()
        raise DemoError(f"the operator exited with status {status}; see {log_path}")
    finally:
        if watches is not None:
            watches.stop()
        if operator is not None:
            stop_operator(operator)
        cluster.stop()
