"""Benchmark of the operator: a burst of TrainingRuns on one Ready Dataset, simulated pods.

Run: python bench/operator.py [--runs 1000] [--train-seconds 2]
The local cluster (API server, Job controller, simulated kubelet) runs in a child process and
the operator (`gyre operator`) in another, so each one's CPU time and peak RSS are read from
/proc alone; this process creates the runs and times watch events as they arrive. All three
share the machine's cores. The API server counts the requests it serves by client (this
benchmark, kopf, the operator's own client) with a middleware added in the child process.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import multiprocessing
import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

import gyre_local.cluster as cluster_module
from gyre_local.certificates import Pki
from gyre_local.kubelet.kubelet import Behaviour, SimulationRules

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "default"
GYRE = f"/apis/gyre.dev/v1alpha1/namespaces/{NAMESPACE}"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
DATASET = "bench"
MODEL = "bench"
FEATURES = [f"f{i}" for i in range(20)]
COMPONENT_LABEL = "app.kubernetes.io/component"
BENCH_AGENT = "gyre-bench"
TERMINAL = ("Succeeded", "Failed")
CREATE_CONCURRENCY = 32
STARTUP_TIMEOUT = 60.0
WATCH_GRACE = 30.0
LOG_SHAPES = 3
LOG_SHAPE_CHARS = 110
Handler = Callable[[dict[str, Any], float], None]


# ---- what the simulated pods report ----


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def profile_result() -> str:
    """The termination message of the simulated profile pod."""
    return json.dumps(
        {
            "digest": _digest("bench data"),
            "rows": 1000,
            "profileUri": "file:///x/profile.json",
            "sampleUri": "file:///x/sample.parquet",
            "features": len(FEATURES),
            "violations": [],
        }
    )


def train_result() -> str:
    """The termination message of every simulated train pod."""
    return json.dumps(
        {
            "modelUri": "file:///x/model.onnx",
            "sha256": _digest("bench model"),
            "metadataUri": "file:///x/metadata.json",
            "metrics": {"accuracy": 0.95, "f1_macro": 0.94},
            "signature": {
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, len(FEATURES)]}],
                "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
            },
            "features": FEATURES,
        }
    )


def simulation(train_seconds: float) -> SimulationRules:
    """Profile pods succeed at once with a profile; train pods after train_seconds with a model."""
    rules = SimulationRules()
    rules.add(
        Behaviour(duration=0.1, termination_message=profile_result()),
        labels={COMPONENT_LABEL: "profile"},
    )
    rules.add(
        Behaviour(duration=train_seconds, termination_message=train_result()),
        labels={COMPONENT_LABEL: "train"},
    )
    return rules


# ---- the cluster's child process ----


def request_key(request: web.Request) -> tuple[str, str, str]:
    """(client, verb, resource[/subresource]) of one API request; verbs LIST and WATCH apart."""
    agent = request.headers.get("User-Agent", "")
    client = "bench" if agent.startswith(BENCH_AGENT) else "kopf" if "kopf" in agent else "client"
    parts = request.path.strip("/").split("/")
    if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
        parts = parts[parts.index("namespaces") + 2 :]
    else:
        parts = parts[2:] if parts[:1] == ["api"] else parts[3:]
    name = "/".join(parts[0:1] + parts[2:3]) or request.path
    verb = request.method
    if verb == "GET" and len(parts) == 1:
        verb = "WATCH" if request.query.get("watch") in ("true", "1") else "LIST"
    return client, verb, name


def counting_create_app(counts: Counter[Any], seconds: Counter[Any]) -> Any:
    """create_app with a middleware counting requests and summing their handler time."""
    create_app = cluster_module.create_app

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        client, method, name = request_key(request)
        started = time.perf_counter()
        status = "failed"
        try:
            response = await handler(request)
            status = str(response.status)
            return response
        finally:
            key = (client, method, name if status.startswith("2") else f"{name} -> {status}")
            counts[key] += 1
            if method != "WATCH":
                seconds[key] += time.perf_counter() - started

    def create(store: Any) -> web.Application:
        app = create_app(store)
        app.middlewares.append(count)
        return app

    return create


async def run_cluster(state_dir: str, train_seconds: float, pipe: Connection) -> None:
    """Serve the cluster; answer "counts" with the request counts until "stop"."""
    counts: Counter[Any] = Counter()
    seconds: Counter[Any] = Counter()
    cluster_module.create_app = counting_create_app(counts, seconds)
    cluster = cluster_module.LocalCluster(
        kubelet="simulated",
        crds=[REPO / "crds"],
        state_dir=state_dir,
        simulation=simulation(train_seconds),
    )
    await cluster.astart()
    pipe.send(cluster.url)
    loop = asyncio.get_running_loop()
    try:
        while await loop.run_in_executor(None, pipe.recv) == "counts":
            pipe.send((dict(counts), dict(seconds)))
    finally:
        await cluster.astop()


def serve_cluster(state_dir: str, train_seconds: float, pipe: Connection) -> None:
    """The child process's entry point."""
    asyncio.run(run_cluster(state_dir, train_seconds, pipe))


# ---- processes ----


@dataclass(frozen=True)
class ProcStats:
    """A process's peak resident memory and CPU time so far."""

    peak_rss_mib: float
    cpu_seconds: float


def proc_stats(pid: int) -> ProcStats:
    """VmHWM and utime+stime of a live process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ProcStats(peak / 1024, ticks / os.sysconf("SC_CLK_TCK"))


def own_cpu_seconds() -> float:
    """This process's CPU time (user + system, every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_operator(kubeconfig: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """`gyre operator` against the cluster, its log in log_path."""
    command = [
        sys.executable, "-m", "gyre_operator.cli", "operator",
        "--kubeconfig", str(kubeconfig),
        "--metrics-port", str(free_port()), "--health-port", str(free_port()),
        "--log-format", "plain",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child process, killing it if it does not exit within 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# ---- objects ----


def dataset_manifest() -> dict[str, Any]:
    """The Dataset every run trains on."""
    return {
        "apiVersion": "gyre.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": DATASET},
        "spec": {
            "source": {"uri": "file:///x/data.csv"},
            "format": "csv",
            "schema": {
                "target": "label",
                "features": [{"name": name, "type": "numeric"} for name in FEATURES],
            },
        },
    }


def run_manifest(index: int) -> dict[str, Any]:
    """TrainingRun number index, one model name for all so they compete for versions."""
    return {
        "apiVersion": "gyre.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": f"bench-{index:05d}"},
        "spec": {
            "datasetRef": {"name": DATASET},
            "model": MODEL,
            "trainer": {"algorithm": "random_forest_classifier"},
            "gates": [{"metric": "accuracy", "min": 0.9}],
        },
    }


# ---- watch-event timing ----


@dataclass
class Recorder:
    """When each Job appeared and finished and each run ended, as seen by this process."""

    runs: int
    job_added: dict[str, float] = field(default_factory=dict)
    job_done: dict[str, float] = field(default_factory=dict)
    job_owner: dict[str, str] = field(default_factory=dict)
    run_done: dict[str, float] = field(default_factory=dict)
    events: Counter[str] = field(default_factory=Counter)
    all_done: asyncio.Event = field(default_factory=asyncio.Event)

    def on_job(self, event: dict[str, Any], at: float) -> None:
        """A Job watch event."""
        job = event["object"]
        name = job["metadata"]["name"]
        self.events["Job " + event["type"]] += 1
        self.job_added.setdefault(name, at)
        owners = job["metadata"].get("ownerReferences") or [{}]
        self.job_owner.setdefault(name, owners[0].get("name", ""))
        conditions = (job.get("status") or {}).get("conditions") or []
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions):
            self.job_done.setdefault(name, at)

    def on_run(self, event: dict[str, Any], at: float) -> None:
        """A TrainingRun watch event."""
        run = event["object"]
        self.events["TrainingRun " + event["type"]] += 1
        if (run.get("status") or {}).get("phase") in TERMINAL:
            self.run_done.setdefault(run["metadata"]["name"], at)
            if len(self.run_done) >= self.runs:
                self.all_done.set()

    def latencies(self) -> list[float]:
        """Seconds from each Job's completion event to its run's terminal event."""
        return sorted(
            self.run_done[run] - done
            for job, done in self.job_done.items()
            if (run := self.job_owner[job]) in self.run_done
        )


async def resource_version(session: aiohttp.ClientSession, url: str) -> str:
    """The collection's current resourceVersion, to watch from."""
    async with session.get(url) as response:
        response.raise_for_status()
        return str((await response.json())["metadata"]["resourceVersion"])


async def watch(
    session: aiohttp.ClientSession, url: str, query: dict[str, str], handle: Handler
) -> None:
    """Feed every event of one watch to handle with its arrival time; fail if it breaks."""
    limit = aiohttp.ClientTimeout(total=float(query["timeoutSeconds"]) + WATCH_GRACE)
    async with session.get(url, params={**query, "watch": "true"}, timeout=limit) as stream:
        stream.raise_for_status()
        async for line in stream.content:
            arrived = time.perf_counter()
            event = json.loads(line)
            if event["type"] == "ERROR":
                raise RuntimeError(f"watch of {url} broke: {event['object']}")
            handle(event, arrived)
    raise RuntimeError(f"watch of {url} ended early")


async def start_watches(
    session: aiohttp.ClientSession, base: str, recorder: Recorder, timeout: float
) -> list[asyncio.Task[None]]:
    """Watch train Jobs and TrainingRuns from now on."""
    common = {"timeoutSeconds": str(math.ceil(timeout))}
    jobs_query = {**common, "labelSelector": f"{COMPONENT_LABEL}=train"}
    jobs_query["resourceVersion"] = await resource_version(session, base + JOBS)
    runs_query = {
        **common,
        "resourceVersion": await resource_version(session, base + GYRE + "/trainingruns"),
    }
    return [
        asyncio.create_task(watch(session, base + JOBS, jobs_query, recorder.on_job)),
        asyncio.create_task(
            watch(session, base + GYRE + "/trainingruns", runs_query, recorder.on_run)
        ),
    ]


# ---- the steps ----


async def create(session: aiohttp.ClientSession, url: str, manifest: dict[str, Any]) -> None:
    """Create one object, failing on any refusal."""
    async with session.post(url, json=manifest) as response:
        if response.status != 201:
            raise RuntimeError(f"create {manifest['metadata']['name']}: {await response.text()}")


async def create_runs(session: aiohttp.ClientSession, base: str, runs: int) -> float:
    """Create the runs, CREATE_CONCURRENCY at a time; returns when the last was accepted."""
    pending = iter(range(runs))

    async def worker() -> None:
        for index in pending:
            await create(session, base + GYRE + "/trainingruns", run_manifest(index))

    await asyncio.gather(*(worker() for _ in range(CREATE_CONCURRENCY)))
    return time.perf_counter()


async def wait_dataset_ready(
    session: aiohttp.ClientSession, base: str, operator: subprocess.Popen[bytes]
) -> None:
    """Poll the Dataset until it is Ready; fail if the operator exits or time runs out."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if operator.poll() is not None:
            raise RuntimeError(f"the operator exited with {operator.returncode}")
        async with session.get(f"{base}{GYRE}/datasets/{DATASET}") as response:
            if ((await response.json()).get("status") or {}).get("phase") == "Ready":
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"Dataset {DATASET} not Ready within {STARTUP_TIMEOUT} s")


async def list_items(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """Every object of a collection."""
    async with session.get(url) as response:
        response.raise_for_status()
        items: list[dict[str, Any]] = (await response.json())["items"]
        return items


# ---- figures ----


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values (nan when empty)."""
    if not values:
        return math.nan
    return values[max(0, math.ceil(fraction * len(values)) - 1)]


def seconds_after(start: float, times: list[float], expected: int) -> str:
    """The last of times after start, or how many of the expected were reached."""
    if len(times) < expected:
        return f"not reached ({len(times)}/{expected})"
    return f"{max(times) - start:.2f} s"


def half(start: float, times: dict[str, float]) -> float:
    """Seconds after start when half of the times had passed."""
    return percentile(sorted(times.values()), 0.5) - start


def version_check(versions: list[dict[str, Any]]) -> str:
    """Whether the model's versions are exactly 1..N, else the duplicates and gaps."""
    numbers = [int(v["spec"]["version"]) for v in versions if v["spec"]["model"] == MODEL]
    duplicates = len(numbers) - len(set(numbers))
    gaps = len(set(range(1, max(numbers, default=0) + 1)) - set(numbers))
    if duplicates == 0 and gaps == 0:
        return f"yes (1..{len(numbers)})"
    return f"no: {duplicates} duplicates, {gaps} gaps, max {max(numbers, default=0)}"


def run_outcomes(runs: list[dict[str, Any]]) -> str:
    """Runs by phase, and by reason for the ones that did not succeed."""
    phases: Counter[str] = Counter()
    for run in runs:
        status = run.get("status") or {}
        phase = status.get("phase") or "none"
        if phase != "Succeeded":
            ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
            phase += f"/{ready[0]['reason']}" if ready else ""
        phases[phase] += 1
    return ", ".join(f"{phase} {count}" for phase, count in phases.most_common())


def request_rows(
    before: dict[Any, int], after: tuple[dict[Any, int], dict[Any, float]], runs: int
) -> list[tuple[str, str, str]]:
    """Operator API requests during the burst, by client/method/resource, busiest first."""
    counts, seconds = after
    rows = []
    for key in sorted(counts, key=lambda k: counts[k] - before.get(k, 0), reverse=True):
        client, method, name = key
        made = counts[key] - before.get(key, 0)
        if client == "bench" or made == 0:
            continue
        rows.append(
            (
                f"  {client} {method} {name}",
                f"{made} ({made / runs:.2f}/run)",
                f"server {seconds.get(key, 0):.2f} s",
            )
        )
    return rows


def print_table(title: list[str], rows: list[tuple[str, str, str]]) -> None:
    """A three-column table: figure, value, anchor."""
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print("\n".join(title))
    for figure, value, anchor in rows:
        print(f"{figure:<{width}}  {value:<{value_width}}  {anchor}".rstrip())


def log_summary(log_path: Path) -> list[tuple[str, str, str]]:
    """The operator log's line count and its most frequent lines, numbers masked."""
    lines = log_path.read_text(errors="replace").splitlines()
    shapes = Counter(re.sub(r"\d+(\.\d+)?", "N", line)[:LOG_SHAPE_CHARS] for line in lines)
    rows = [("operator log lines", str(len(lines)), str(log_path))]
    common = shapes.most_common(LOG_SHAPES)
    rows += [(f"  frequent line {i}", str(n), shape) for i, (shape, n) in enumerate(common, 1)]
    return rows


# ---- the run ----


@dataclass(frozen=True)
class Processes:
    """The processes measured: the cluster (with its request counter) and the operator."""

    cluster_pid: int
    counter: Connection
    operator: subprocess.Popen[bytes]
    operator_started: float
    log_path: Path

    def request_counts(self) -> tuple[dict[Any, int], dict[Any, float]]:
        """The API server's request counts and handler seconds so far."""
        self.counter.send("counts")
        if not self.counter.poll(STARTUP_TIMEOUT):
            raise TimeoutError("the cluster process did not report its request counts")
        counts: tuple[dict[Any, int], dict[Any, float]] = self.counter.recv()
        return counts

    def cpu(self) -> tuple[float, float, float]:
        """CPU seconds so far of the cluster, the operator and this process."""
        cluster = proc_stats(self.cluster_pid).cpu_seconds
        return cluster, proc_stats(self.operator.pid).cpu_seconds, own_cpu_seconds()


def burst_timeout(runs: int, train_seconds: float) -> float:
    """How long the burst may take before the benchmark gives up waiting."""
    return 60.0 + 0.25 * runs + train_seconds


async def wait_done(recorder: Recorder, watches: list[asyncio.Task[None]], timeout: float) -> None:
    """Until every run ended, a watch failed or the timeout passed."""
    done = asyncio.create_task(recorder.all_done.wait())
    await asyncio.wait([done, *watches], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    done.cancel()
    for task in watches:
        task.cancel()
    outcomes = await asyncio.gather(*watches, return_exceptions=True)
    failures = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    if failures:
        raise RuntimeError("a watch failed") from failures[0]


async def measure(
    options: argparse.Namespace, base: str, processes: Processes, trust: ssl.SSLContext
) -> list[tuple[str, str, str]]:
    """Dataset, then the burst of runs (over HTTPS trusted by `trust`); the table's rows."""
    runs, timeout = options.runs, burst_timeout(options.runs, options.train_seconds)
    async with aiohttp.ClientSession(
        headers={"User-Agent": BENCH_AGENT},
        connector=aiohttp.TCPConnector(limit=CREATE_CONCURRENCY + 4, ssl=trust),
        timeout=aiohttp.ClientTimeout(total=STARTUP_TIMEOUT),
    ) as session:
        await create(session, base + GYRE + "/datasets", dataset_manifest())
        await wait_dataset_ready(session, base, processes.operator)
        ready = time.perf_counter() - processes.operator_started
        recorder = Recorder(runs)
        watches = await start_watches(session, base, recorder, timeout)
        requests_before, cpu_before = processes.request_counts()[0], processes.cpu()
        first = time.perf_counter()
        created = await create_runs(session, base, runs)
        await wait_done(recorder, watches, timeout)
        cpu_after, requests = processes.cpu(), processes.request_counts()
        final_runs = await list_items(session, base + GYRE + "/trainingruns")
        versions = await list_items(session, base + GYRE + "/modelversions")
    burst_cpu = [after - before for after, before in zip(cpu_after, cpu_before, strict=True)]
    latencies = recorder.latencies()
    operator, cluster = proc_stats(processes.operator.pid), proc_stats(processes.cluster_pid)
    made = sum(n - requests_before.get(k, 0) for k, n in requests[0].items() if k[0] != "bench")
    return [
        ("operator start -> Dataset Ready", f"{ready:.2f} s", "start-up and one profile Job"),
        (
            f"{runs} TrainingRuns created by this client",
            f"{created - first:.2f} s",
            f"{CREATE_CONCURRENCY} creates in flight",
        ),
        (
            f"first create -> {runs} Jobs exist",
            seconds_after(first, list(recorder.job_added.values()), runs),
            f"anchor: <= 10 s on 2 cores; half after {half(first, recorder.job_added):.2f} s",
        ),
        (
            f"first create -> all {runs} runs terminal",
            seconds_after(first, list(recorder.run_done.values()), runs),
            f"each train pod runs {options.train_seconds:g} s",
        ),
        ("Job complete -> run terminal, p50", f"{percentile(latencies, 0.5):.3f} s", ""),
        (
            "Job complete -> run terminal, p99",
            f"{percentile(latencies, 0.99):.3f} s",
            "anchor: p99 < 1 s",
        ),
        ("Job complete -> run terminal, max", f"{percentile(latencies, 1.0):.3f} s", ""),
        ("runs by phase", run_outcomes(final_runs), ""),
        ("ModelVersions", str(len(versions)), f"expected {runs}"),
        ("versions 1..N without duplicates", version_check(versions), ""),
        ("operator peak RSS (VmHWM)", f"{operator.peak_rss_mib:.0f} MiB", ""),
        (
            "operator CPU user+sys",
            f"{burst_cpu[1]:.1f} s",
            f"during the burst; {operator.cpu_seconds:.1f} s since start",
        ),
        ("cluster process peak RSS (VmHWM)", f"{cluster.peak_rss_mib:.0f} MiB", ""),
        (
            "cluster process CPU user+sys",
            f"{burst_cpu[0]:.1f} s",
            "during the burst: API server, Job controller, simulated kubelet",
        ),
        (
            "this client's CPU user+sys",
            f"{burst_cpu[2]:.1f} s",
            "during the burst: creates, watches",
        ),
        *(
            (f"watch events seen: {kind}", str(count), f"{count / runs:.1f}/run")
            for kind, count in sorted(recorder.events.items())
        ),
        ("operator API requests during the burst", f"{made} ({made / runs:.1f}/run)", ""),
        *request_rows(requests_before, requests, runs),
        *log_summary(processes.log_path),
    ]


def cluster_url(pipe: Connection, cluster: multiprocessing.process.BaseProcess) -> str:
    """The URL the cluster process reports once it serves; fail if it dies or takes too long."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not pipe.poll(0.1):
        if not cluster.is_alive():
            raise RuntimeError(f"the local cluster exited with {cluster.exitcode}")
        if time.monotonic() > deadline:
            raise TimeoutError("the local cluster did not start")
    return str(pipe.recv())


def run(options: argparse.Namespace, state_dir: str) -> list[tuple[str, str, str]]:
    """Start the cluster and the operator, measure, stop both."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    cluster = context.Process(
        target=serve_cluster, args=(state_dir, options.train_seconds, child), daemon=True
    )
    cluster.start()
    try:
        base = cluster_url(parent, cluster)
        log_path = Path(tempfile.mkstemp(prefix="gyre-bench-operator-", suffix=".log")[1])
        operator = start_operator(Path(state_dir) / "kubeconfig", log_path)
        started = time.perf_counter()
        try:
            assert cluster.pid is not None
            processes = Processes(cluster.pid, parent, operator, started, log_path)
            trust = Pki(Path(state_dir) / "pki").client_context()
            return asyncio.run(measure(options, base, processes, trust))
        finally:
            stop_process(operator)
    finally:
        parent.send("stop")
        cluster.join(10)
        if cluster.is_alive():
            cluster.terminate()
            cluster.join(10)


def main() -> None:
    """Parse the flags, run the benchmark, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000, help="TrainingRuns in the burst")
    parser.add_argument(
        "--train-seconds", type=float, default=2.0, help="how long each simulated train pod runs"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gyre-bench-") as state_dir:
        rows = run(options, state_dir)
    title = [
        f"Gyre operator, a burst of {options.runs} TrainingRuns on one Ready Dataset "
        f"(simulated kubelet, train pods {options.train_seconds:g} s).",
        f"{os.cpu_count()} CPUs shared by three processes: the local cluster (API server, Job "
        "controller, simulated kubelet), the operator and this client.",
        "Latencies are watch-event arrival times in this client.",
        "",
    ]
    print_table(title, [("figure", "value", "anchor / note"), *rows])


if __name__ == "__main__":
    main()
