"""Benchmark of the local API server: create throughput, watch latency, memory over churn,
and the cost of listing pods by label selector and reconciling a Job as the store fills up.

Run: python bench/local_cluster.py [--objects 1000] [--memory-objects 10000] [--history 10000]
     [--list-pods 1000,10000] [--writes 1000] [--only writes]
The server runs in a child process so its resident memory is measured alone; the Python heap
held by a Store, the list latencies and the write path (creates and status updates of a custom
resource with a schema, pod creates and status updates) are measured in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import time
import tracemalloc
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from gyre_local.apiserver.app import create_app
from gyre_local.controllers.jobs import TRACKING_FINALIZER, JobController
from gyre_local.controllers.objects import owner_reference
from gyre_local.store.builtins import CRD_GROUP, CRD_PLURAL
from gyre_local.store.patching import MERGE_PATCH
from gyre_local.store.store import Store

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
MIB = 1024 * 1024
TRAININGRUN_CRD = Path(__file__).resolve().parent.parent / "crds" / "trainingruns.gyre.dev.yaml"


def _serve(history_size: int, ready: Connection) -> None:
    async def main() -> None:
        runner = web.AppRunner(create_app(Store(history_size=history_size)))
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        ready.send(sock.getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found")


def _configmap(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"bench": "yes"}},
        "data": {"payload": "x" * 256},
    }


async def _create_many(
    session: aiohttp.ClientSession, url: str, prefix: str, count: int, concurrency: int
) -> float:
    pending = list(range(count))

    async def worker() -> None:
        while pending:
            index = pending.pop()
            async with session.post(url + CONFIGMAPS, json=_configmap(f"{prefix}-{index}")) as r:
                assert r.status == 201, await r.text()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _delete_all(session: aiohttp.ClientSession, url: str, prefix: str, count: int) -> None:
    semaphore = asyncio.Semaphore(32)

    async def delete(index: int) -> None:
        async with semaphore, session.delete(url + CONFIGMAPS + f"/{prefix}-{index}") as r:
            assert r.status == 200

    await asyncio.gather(*(delete(i) for i in range(count)))


async def _watch_latencies(session: aiohttp.ClientSession, url: str, count: int) -> list[float]:
    async with session.get(url + CONFIGMAPS) as response:
        rv = (await response.json())["metadata"]["resourceVersion"]
    latencies: list[float] = []
    watch_url = url + CONFIGMAPS + f"?watch=true&resourceVersion={rv}&labelSelector=probe%3Dyes"
    async with session.get(watch_url) as stream:
        for index in range(count):
            body = _configmap(f"probe-{index}")
            body["metadata"]["labels"]["probe"] = "yes"
            sent = time.perf_counter()
            async with session.post(url + CONFIGMAPS, json=body) as created:
                assert created.status == 201
            line = await stream.content.readline()
            assert json.loads(line)["type"] == "ADDED"
            latencies.append((time.perf_counter() - sent) * 1000)
    return latencies


async def measure_server(url: str, pid: int, objects: int, memory_objects: int) -> None:
    """Print creates/s, watch latency and server RSS for a server at url (process pid)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        elapsed = await _create_many(session, url, "speed", objects, 16)
        print(f"creates: {objects} in {elapsed:.2f} s = {objects / elapsed:.0f}/s")
        await _delete_all(session, url, "speed", objects)

        latencies = sorted(await _watch_latencies(session, url, 500))
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(
            "watch latency (write sent -> event received, 500 events): "
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )

        baseline = _rss_mib(pid)
        peaks = []
        for _ in range(2):
            await _create_many(session, url, "mem", memory_objects, 32)
            peaks.append(_rss_mib(pid))
            await _delete_all(session, url, "mem", memory_objects)
        after = _rss_mib(pid)
        print(
            f"server RSS: baseline {baseline:.1f} MiB; {memory_objects} objects "
            f"{peaks[0]:.1f} MiB; deleted, created and deleted again {after:.1f} MiB "
            f"(second peak {peaks[1]:.1f} MiB)"
        )


def measure_store_heap(objects: int, history: int) -> None:
    """Print the Python heap a Store holds over a create / delete / churn cycle."""
    tracemalloc.start()
    store = Store(history_size=history)
    base = tracemalloc.get_traced_memory()[0]
    for index in range(objects):
        store.create("", "configmaps", "default", _configmap(f"heap-{index}"))
    loaded = tracemalloc.get_traced_memory()[0]
    for index in range(objects):
        store.delete("", "configmaps", "default", f"heap-{index}")
    deleted = tracemalloc.get_traced_memory()[0]
    store.create("", "configmaps", "default", {"metadata": {"name": "churn"}})
    for index in range(history):
        store.patch("", "configmaps", "default", "churn", {"data": {"n": str(index)}}, MERGE_PATCH)
    rotated = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(
        f"store heap, history {history}: empty {base / MIB:.1f} MiB; {objects} objects "
        f"{loaded / MIB:.1f} MiB; all deleted {deleted / MIB:.1f} MiB; after {history} small "
        f"writes rotate the history {rotated / MIB:.1f} MiB"
    )


def _timed_ms(call: Any, repeat: int) -> float:
    """The median wall time of `call()` over `repeat` calls, in milliseconds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _job_pod(job: dict[str, Any], seq: int) -> dict[str, Any]:
    """A pod as the Job controller creates it, with a `seq` label for range selectors."""
    meta = job["metadata"]
    return {
        "metadata": {
            "name": f"{meta['name']}-pod",
            "labels": {
                "app": "bench",
                "seq": str(seq),
                "job-name": meta["name"],
                "batch.kubernetes.io/job-name": meta["name"],
                "controller-uid": meta["uid"],
                "batch.kubernetes.io/controller-uid": meta["uid"],
            },
            "ownerReferences": [owner_reference(job)],
            "finalizers": [TRACKING_FINALIZER],
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "local/python", "args": ["-c", "pass"]}],
        },
    }


def measure_list_latency(pods: int) -> None:
    """Print list latencies by selector and one Job reconcile's cost with `pods` pods stored.

    Each pod belongs to its own Job in namespace default (one pod per Job, as the operator
    benchmark has it); namespace `small` holds 10 more pods. The `seq>` selector matches the
    same single pod as `job-name=` but can only be answered by scanning every pod: it is the
    cost a list had before label indexes.
    """
    store = Store(history_size=1_000)
    store.create("", "namespaces", None, {"metadata": {"name": "small"}})
    jobs = []
    for index in range(pods):
        job = store.create(
            "batch",
            "jobs",
            "default",
            {
                "metadata": {"name": f"run-{index}"},
                "spec": {"template": {"spec": {"containers": [{"name": "main"}]}}},
            },
        )
        jobs.append(job)
        store.create("", "pods", "default", _job_pod(job, index))
    for index in range(10):
        store.create("", "pods", "small", {"metadata": {"name": f"p-{index}"}, "spec": {}})
    picks = [jobs[(index * 7919) % pods] for index in range(50)]
    cycle = iter(picks * 1000)

    def by_name() -> None:
        name = next(cycle)["metadata"]["name"]
        store.list("", "pods", "default", label_selector=f"job-name={name}")

    def by_uid() -> None:
        uid = next(cycle)["metadata"]["uid"]
        store.list("", "pods", "default", label_selector=f"controller-uid={uid}")

    def by_seq() -> None:
        store.list("", "pods", "default", label_selector=f"seq>{pods - 2}")

    controller = JobController(store)

    def reconcile() -> None:
        controller.reconcile("default", next(cycle)["metadata"]["name"])

    figures = {
        "job-name=X (1 match)": _timed_ms(by_name, 50),
        "controller-uid=U (1 match)": _timed_ms(by_uid, 50),
        "seq>N, scan (1 match)": _timed_ms(by_seq, 20),
        "namespace small (10 of all)": _timed_ms(lambda: store.list("", "pods", "small"), 50),
        "JobController.reconcile": _timed_ms(reconcile, 50),
    }
    print(f"lists with {pods} pods stored (median ms):")
    for label, value in figures.items():
        print(f"  {label:32} {value:8.3f}")


def _run(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "gyre.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": f"run-{index:05d}", "labels": {"app": "bench"}},
        "spec": {
            "datasetRef": {"name": "bench"},
            "model": "bench",
            "trainer": {"algorithm": "random_forest_classifier", "hyperparameters": {"n": 50}},
            "gates": [{"metric": "accuracy", "min": 0.9}],
        },
    }


def _run_status(step: int) -> dict[str, Any]:
    """A TrainingRun status as the operator writes it, a little different at each step."""
    return {
        "phase": "Running" if step < 2 else "Succeeded",
        "jobName": "bench-job",
        "observedGeneration": 1,
        "startTime": "2024-01-01T00:00:00Z",
        "metrics": {"accuracy": 0.9 + step / 100},
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if step >= 2 else "False",
                "reason": f"Step{step}",
                "message": f"step {step}",
                "lastTransitionTime": "2024-01-01T00:00:00Z",
                "observedGeneration": 1,
            }
        ],
    }


def _pod_status(step: int) -> dict[str, Any]:
    """A pod status as the simulated kubelet writes it."""
    running = {"running": {"startedAt": "2024-01-01T00:00:00Z"}}
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "message": "{}"}}
    return {
        "phase": "Running" if step < 2 else "Succeeded",
        "conditions": [
            {"type": kind, "status": "True" if step else "False"}
            for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "containerStatuses": [
            {
                "name": "main",
                "ready": step == 1,
                "restartCount": 0,
                "image": "local/python",
                "containerID": "local://main",
                "state": running if step < 2 else done,
            }
        ],
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "startTime": "2024-01-01T00:00:00Z",
    }


def _rate(count: int, call: Any) -> float:
    """Calls per second of `call(index)` over `count` indexes."""
    started = time.perf_counter()
    for index in range(count):
        call(index)
    return count / (time.perf_counter() - started)


def measure_write_path(count: int) -> None:
    """Print writes/s of the store's write path, in-process (no HTTP, no watchers).

    A TrainingRun (the repository's CRD: structural schema, CEL rules) is created, then its
    status written three times by merge patch on the status subresource; a Job's pod is created,
    then its status replaced three times, as the simulated kubelet does.
    """
    store = Store(history_size=10_000)
    store.create(CRD_GROUP, CRD_PLURAL, None, yaml.safe_load(TRAININGRUN_CRD.read_text()))
    group, plural = "gyre.dev", "trainingruns"
    figures = {
        "TrainingRun creates": _rate(
            count, lambda i: store.create(group, plural, "default", _run(i))
        )
    }
    for step in range(3):
        figures[f"TrainingRun status merge patch #{step + 1}"] = _rate(
            count,
            lambda i, step=step: store.patch(
                group,
                plural,
                "default",
                f"run-{i:05d}",
                {"status": _run_status(step)},
                MERGE_PATCH,
                subresource="status",
            ),
        )
    job = store.create(
        "batch",
        "jobs",
        "default",
        {
            "metadata": {"name": "bench-job"},
            "spec": {"template": {"spec": {"containers": [{"name": "main"}]}}},
        },
    )
    pods = [f"bench-job-{i:05d}" for i in range(count)]

    def create_pod(index: int) -> None:
        pod = _job_pod(job, index)
        pod["metadata"]["name"] = pods[index]
        store.create("", "pods", "default", pod)

    figures["pod creates"] = _rate(count, create_pod)
    for step in range(3):

        def write_status(index: int, step: int = step) -> None:
            pod = store.get("", "pods", "default", pods[index])
            pod["status"] = _pod_status(step)
            store.replace("", "pods", "default", pods[index], pod, subresource="status")

        figures[f"pod status get + replace #{step + 1}"] = _rate(count, write_status)
    print(f"write path, {count} objects each (in-process, per second):")
    for label, value in figures.items():
        print(f"  {label:40} {value:8.0f}")


def main() -> None:
    """Measure a server process over HTTP, then the store heap and list latencies in-process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--memory-objects", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--list-pods", default="1000,10000", help="comma-separated pod counts")
    parser.add_argument("--writes", type=int, default=1000, help="objects in the write figures")
    parser.add_argument("--only", choices=["server", "heap", "lists", "writes"], action="append")
    options = parser.parse_args()
    sections = set(options.only or ["server", "heap", "lists", "writes"])
    if "server" in sections:
        _measure_server_process(options)
    if "heap" in sections:
        measure_store_heap(options.memory_objects, options.history)
        measure_store_heap(options.memory_objects, 1_000)
    if "lists" in sections:
        for count in options.list_pods.split(","):
            measure_list_latency(int(count))
    if "writes" in sections:
        measure_write_path(options.writes)


def _measure_server_process(options: argparse.Namespace) -> None:
    """Start a server process and measure it over HTTP."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_serve, args=(options.history, sender), daemon=True)
    server.start()
    try:
        port = receiver.recv()
        assert server.pid is not None
        url = f"http://127.0.0.1:{port}"
        asyncio.run(measure_server(url, server.pid, options.objects, options.memory_objects))
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
