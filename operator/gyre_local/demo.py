"""`gyre local demo`: the whole loop on a local cluster, live.

It uses Gyre as a user would: the CRDs come from `gyre crds`, the operator runs as
`gyre operator` in a subprocess, the examples are applied with demo-sized timings
(DEMO_OVERRIDES), and progress is read from the objects' status by watching them. Once the
InferenceService is Ready, a load generator sends it wine rows; after the first drift check
that finds no drift, the demo shifts both the traffic and the Dataset's labelled data, and
follows the DriftMonitor's retraining run to the new version's canary and promotion. A
terminal gets a live view; anything else (CI, a pipe) gets one line per milestone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import math
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
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from gyre_local.cluster import LocalCluster, wait_for
from gyre_local.controllers.informer import EventHandler, watch_forever
from gyre_local.dashboard import Entry, Snapshot, entry_text, render, summary
from gyre_local.milestones import KINDS, SERVED_MODEL, Mark, Milestone, Progress
from gyre_local.store.builtins import ResourceType
from gyre_local.workload import (
    SHIFT_SDS,
    SHIFTED_FEATURES,
    LoadGenerator,
    wine,
    write_wine_csv,
)

EXAMPLES_DIR = Path("examples")
NAMESPACE = "default"
OPERATOR_STOP_GRACE = 5.0
# How long an event wait blocks before checking that the operator still runs.
_LIVENESS_INTERVAL = 0.5
SERVICE_WAIT = 10.0
VIEW_REFRESH = 4.0
LOAD_RATE = 40.0
TRAFFIC_SEED = 1
NEW_DATA_ROWS = 200
NEW_DATA_SEED = 2

# The examples' timings scaled down so the whole loop runs in minutes, set on the objects'
# spec by kind (see with_overrides) and printed once when the demo starts.
DEMO_OVERRIDES: dict[str, dict[str, Any]] = {
    "Dataset": {"refreshInterval": "15s"},
    "InferenceService": {
        "rollout.steps[].pause": "10s",
        "rollout.analysis.interval": "5s",
        # At LOAD_RATE, a 25% canary step gets about 50 requests per 5 s interval.
        "rollout.analysis.minRequests": 10,
    },
    "DriftMonitor": {
        "schedule": None,
        "interval": "20s",
        "window.duration": None,
        "window.requests": 600,
        "minSamples": 300,
        "retrain.cooldown": "2m",
        "retrain.maxRunsPerDay": 3,
    },
}

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


def source_path(cluster: LocalCluster, namespace: str, uri: str) -> Path:
    """The local file a pod of the namespace reads for a pvc://<claim>/<path> data URI."""
    scheme, _, rest = uri.partition("://")
    claim, _, path = rest.partition("/")
    if scheme != "pvc" or not claim or not path:
        raise DemoError(f"the demo writes its data into a claim, pvc://<claim>/<path>, not {uri}")
    return cluster.kubelet.claim_directory(namespace, claim) / path


def write_demo_data(cluster: LocalCluster, examples: list[dict[str, Any]]) -> Path | None:
    """Write the wine data where the example Dataset points; returns the file, if one."""
    for obj in examples:
        metadata = obj.get("metadata") or {}
        if obj.get("kind") == "Dataset" and metadata.get("name") == SERVED_MODEL:
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


def with_overrides(
    objects: list[dict[str, Any]], overrides: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Copies of the objects with each kind's overrides set in their spec. A path is dotted;
    `name[]` stands for every element of a list; a None value removes the field."""
    changed = copy.deepcopy(objects)
    for obj in changed:
        for path, value in (overrides.get(obj.get("kind", "")) or {}).items():
            _set(obj.setdefault("spec", {}), path.split("."), value)
    return changed


def _set(node: dict[str, Any], parts: list[str], value: Any) -> None:
    head, *rest = parts
    if head.endswith("[]"):
        for item in node.get(head[:-2]) or []:
            _set(item, rest, value)
    elif rest:
        _set(node.setdefault(head, {}), rest, value)
    elif value is None:
        node.pop(head, None)
    else:
        node[head] = value


def describe_overrides(overrides: Mapping[str, Mapping[str, Any]]) -> str:
    """One line of what the overrides set, kind by kind (removed fields left out)."""
    return "; ".join(
        f"{kind} "
        + ", ".join(f"{path} {value}" for path, value in paths.items() if value is not None)
        for kind, paths in overrides.items()
    )


def local_url(cluster: LocalCluster, url: str) -> str:
    """The 127.0.0.1 address of an in-cluster Service URL (http://<name>.<namespace>.svc...)."""
    host = urlsplit(url).hostname or ""
    name, _, rest = host.partition(".")
    namespace = rest.partition(".")[0] or NAMESPACE

    def lookup() -> str:
        try:
            return cluster.service_url(namespace, name)
        except LookupError:
            return ""

    try:
        return wait_for(lookup, timeout=SERVICE_WAIT)
    except TimeoutError:
        raise DemoError(f"no local port for {url} within {SERVICE_WAIT:g} s") from None


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


class LoopFollower:
    """Follows the loop's objects: records milestones, starts the traffic once the model is
    served, shifts traffic and data after the first check without drift, and offers the
    live view a snapshot of it all at any time (from another thread)."""

    def __init__(
        self,
        cluster: LocalCluster,
        console: Console,
        data: Path | None,
        *,
        shift: bool,
        print_lines: bool,
    ) -> None:
        self.progress = Progress()
        self.load: LoadGenerator | None = None
        self.service_url: str | None = None
        self.console = console
        self._cluster = cluster
        self._data = data
        self._shift = shift
        self._shifted = False
        self._print_lines = print_lines
        self._started = time.monotonic()
        self._timeline: tuple[Entry, ...] = ()
        self._objects: dict[str, dict[str, Any]] = {}

    def follow(self, events: Iterator[Event], *, goal: bool) -> bool:
        """Take events until the goal is reached (True) or a milestone fails (False); without
        a goal, until the events end."""
        for kind, obj in events:
            for milestone in self.progress.observe(kind, obj):
                self.record(milestone)
                if milestone.failed:
                    return False
            self._act()
            self._objects = {kind: dict(named) for kind, named in self.progress.objects.items()}
            if goal and self.progress.goal_reached(shift=self._shift):
                return True
        return False

    def record(self, milestone: Milestone) -> None:
        """Add a milestone to the timeline (and print it when there is no live view)."""
        entry = Entry(time.monotonic() - self._started, milestone)
        self._timeline = (*self._timeline, entry)
        if self._print_lines:
            self.console.print(entry_text(entry))

    def snapshot(self) -> Snapshot:
        """What the view shows now."""
        return Snapshot(
            elapsed=time.monotonic() - self._started,
            now=datetime.now(UTC),
            objects=self._objects,
            timeline=self._timeline,
            load=self.load.figures() if self.load is not None else None,
            shifted_features=frozenset(SHIFTED_FEATURES if self._shifted else ()),
        )

    def _act(self) -> None:
        service = self.progress.service()
        if self.load is None and service is not None:
            self.service_url = local_url(self._cluster, str(service["status"]["url"]))
            self.load = LoadGenerator(
                self.service_url, SERVED_MODEL, rate=LOAD_RATE, seed=TRAFFIC_SEED
            ).start()
            self.record(
                Milestone(
                    f"traffic started: {LOAD_RATE:g} requests/s to {self.service_url}", Mark.ACTION
                )
            )
        if (
            self._shift
            and not self._shifted
            and self.load is not None
            and self.progress.healthy_checks() >= 1
        ):
            self._shifted = True
            self.load.shift(True)
            self.record(
                Milestone(
                    f"traffic shifted: {', '.join(SHIFTED_FEATURES)} moved +{SHIFT_SDS:g} sd",
                    Mark.ACTION,
                )
            )
            if self._data is not None:
                digest = write_wine_csv(
                    self._data, shifted=True, rows=NEW_DATA_ROWS, seed=NEW_DATA_SEED
                )
                self.record(
                    Milestone(
                        f"new labelled data, shifted alike, written to {self._data} "
                        f"(sha256 {digest[:12]})",
                        Mark.ACTION,
                    )
                )

    def stop(self) -> None:
        """Stop the traffic."""
        if self.load is not None:
            self.load.stop()


def run(args: argparse.Namespace) -> int:
    """Run the demo: until Ctrl-C or SIGTERM, or with --exit-when-done until the loop closed."""
    console = Console(soft_wrap=True)
    # SIGINT explicitly too: a process started in the background of a shell inherits an
    # ignored SIGINT, which Python would otherwise leave ignored.
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, signal.default_int_handler) for s in stop_signals}
    try:
        return _run(args, console)
    except KeyboardInterrupt:
        return 0
    except DemoError as error:
        console.print(f"[red]gyre local demo:[/] {escape(str(error))}")
        return 1
    finally:
        for stop_signal, handler in previous.items():
            signal.signal(stop_signal, handler)


def _run(args: argparse.Namespace, console: Console) -> int:
    examples = with_overrides(manifests(args.examples), DEMO_OVERRIDES)
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
    follower: LoopFollower | None = None
    try:
        console.print(f"gyre local cluster ({args.kubelet} kubelet) at {cluster.url}")
        console.print(f"demo timings: {describe_overrides(DEMO_OVERRIDES)}")
        data = write_demo_data(cluster, examples)
        if data is not None:
            console.print(f"wine data set written to {data}")
        log_path = state_dir / "operator.log"
        metrics_port = args.metrics_port or free_port()
        operator = start_operator(
            gyre,
            cluster,
            metrics_port=metrics_port,
            health_port=args.health_port or free_port(),
            log_path=log_path,
        )
        console.print(f"operator started, its log: {log_path}")
        apply(cluster, examples)
        console.print(f"applied {len(examples)} example objects; following their progress")
        types = custom_types(cluster)
        watches = ObjectWatches(cluster, [types[kind] for kind in KINDS], NAMESPACE)
        live = console.is_terminal
        follower = LoopFollower(
            cluster, console, data, shift=not args.no_shift, print_lines=not live
        )
        # Without the shift and without --exit-when-done the view runs until Ctrl-C.
        goal = not args.no_shift or args.exit_when_done
        deadline = time.monotonic() + args.timeout if goal else math.inf
        outcome = _follow(follower, watches, operator, deadline, goal=goal, live=live)
        if outcome is _Outcome.TIMED_OUT:
            console.print(
                f"[yellow]the loop did not close within {args.timeout:g} s[/]; see {log_path}"
            )
        looks = _looks(cluster, follower, metrics_port, log_path)
        console.print(summary(follower.snapshot(), looks, with_timeline=live), highlight=False)
        if outcome is _Outcome.INTERRUPTED or args.exit_when_done:
            return 0 if outcome in (_Outcome.DONE, _Outcome.INTERRUPTED) else 1
        console.print("Ctrl-C stops the demo.")
        status = operator.wait()
        raise DemoError(f"the operator exited with status {status}; see {log_path}")
    finally:
        if follower is not None:
            follower.stop()
        if watches is not None:
            watches.stop()
        if operator is not None:
            stop_operator(operator)
        cluster.stop()


class _Outcome(Enum):
    DONE = "done"
    FAILED = "failed"
    TIMED_OUT = "timed out"
    INTERRUPTED = "interrupted"


def _follow(
    follower: LoopFollower,
    watches: ObjectWatches,
    operator: subprocess.Popen[bytes],
    deadline: float,
    *,
    goal: bool,
    live: bool,
) -> _Outcome:
    """Follow the loop, in a live view on a terminal, until the goal, a failure, the deadline
    or Ctrl-C."""
    view = (
        Live(
            console=follower.console,
            get_renderable=lambda: render(follower.snapshot()),
            refresh_per_second=VIEW_REFRESH,
        )
        if live
        else contextlib.nullcontext()
    )
    try:
        with view:
            done = follower.follow(until(watches.events, deadline, operator), goal=goal)
    except DemoTimeout:
        return _Outcome.TIMED_OUT
    except KeyboardInterrupt:
        return _Outcome.INTERRUPTED
    return _Outcome.DONE if done else _Outcome.FAILED


def _looks(
    cluster: LocalCluster, follower: LoopFollower, metrics_port: int, log_path: Path
) -> list[tuple[str, str]]:
    """Where to look next: (what, command or URL)."""
    looks = [
        ("point kubectl at the local cluster", f"export KUBECONFIG={cluster.kubeconfig_path}"),
        ("every Gyre object", "kubectl get gyre"),
        ("the drift checks and the retraining runs", f"kubectl describe gdm {SERVED_MODEL}"),
        ("what the operator did", "kubectl get events"),
        ("the operator's metrics", f"http://127.0.0.1:{metrics_port}/metrics"),
        ("the operator's log", str(log_path)),
    ]
    if follower.service_url is not None:
        row = [float(v) for v in wine().features[0]]
        looks += [
            ("a model server's metrics", f"{follower.service_url}/metrics"),
            ("one prediction", curl_line(follower.service_url, SERVED_MODEL, row)),
        ]
    return looks
