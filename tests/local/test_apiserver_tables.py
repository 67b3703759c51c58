"""Server-side Tables: the columns and cells `kubectl get` prints, as kube-apiserver's printers
produce them, with `-o wide` and for `kubectl get -w`."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import pytest
from kubectl_runner import KUBECTL, kubectl_runner
from kubernetes import client

from gyre_local.apiserver import tables
from gyre_local.apiserver.tables import human_duration
from gyre_local.cluster import LocalCluster, wait_for
from gyre_local.kubelet.kubelet import Behaviour
from gyre_local.store.store import Store

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which(KUBECTL) is None, reason="kubectl is not installed"),
]

Output = Callable[..., str]
Rows = list[dict[str, str]]


@pytest.fixture(scope="module")
def kubectl(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Output:
    """Run kubectl against the module's cluster and return its output."""
    run = kubectl_runner(cluster.kubeconfig_path, tmp_path_factory.mktemp("kubecache"))
    return lambda *args, stdin=None: run(*args, stdin=stdin).stdout


@pytest.fixture
def namespace(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:50]
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def header_and_rows(output: str) -> tuple[list[str], Rows]:
    """Split kubectl's aligned table by the header's column starts (cells may be empty)."""
    lines = output.rstrip("\n").splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    starts, offset = [], 0
    for name in header:
        offset = lines[0].index(name, offset)
        starts.append(offset)
        offset += len(name)
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    rows = [
        {name: line[a:b].strip() for name, (a, b) in zip(header, bounds, strict=True)}
        for line in lines[1:]
    ]
    return header, rows


def by_name(rows: Rows, key: str = "NAME") -> dict[str, dict[str, str]]:
    return {row[key]: row for row in rows}


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": "tables"}},
        "spec": {"containers": [{"name": "main", "image": "server:1"}], **spec},
    }


def phase_is(core: client.CoreV1Api, namespace: str, name: str, *phases: str) -> bool:
    return core.read_namespaced_pod(name, namespace).status.phase in phases


def test_human_duration_matches_apimachinery() -> None:
    cases = {
        0: "0s",
        -1.5: "0s",
        -3: "<invalid>",
        5: "5s",
        119: "119s",
        120: "2m",
        182: "3m2s",
        599: "9m59s",
        600: "10m",
        10799: "179m",
        10800: "3h",
        11100: "3h5m",
        8 * 3600 + 59: "8h",
        47 * 3600: "47h",
        51 * 3600: "2d3h",
        7 * 86400: "7d",
        8 * 86400: "8d",
        729 * 86400: "729d",
        730 * 86400: "2y",
        735 * 86400: "2y5d",
        9 * 365 * 86400: "9y",
    }
    assert {seconds: human_duration(seconds) for seconds in cases} == cases


def running(ready: bool = True) -> dict[str, Any]:
    return {"ready": ready, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}


def terminated(code: int, reason: str = "", signal: int = 0) -> dict[str, Any]:
    state = {"exitCode": code, "reason": reason, "signal": signal}
    return {"ready": False, "state": {"terminated": state}}


def waiting(reason: str) -> dict[str, Any]:
    return {"ready": False, "state": {"waiting": {"reason": reason}}}


SIDECAR = {"name": "init", "image": "proxy", "restartPolicy": "Always"}


@pytest.mark.parametrize(
    ("extra", "status", "shown"),
    [
        ({}, {"phase": "Running", "containerStatuses": [running()]}, ("1/1", "Running")),
        ({}, {"phase": "Running", "containerStatuses": [running(False)]}, ("0/1", "Running")),
        ({}, {"phase": "Failed", "containerStatuses": [terminated(2)]}, ("0/1", "ExitCode:2")),
        ({}, {"phase": "Failed", "containerStatuses": [terminated(1, signal=9)]},
         ("0/1", "Signal:9")),
        ({}, {"phase": "Failed", "reason": "Evicted"}, ("0/1", "Evicted")),
        ({}, {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
        ]}, ("0/1", "SchedulingGated")),
        ({"initContainers": [{"name": "init", "image": "i"}]}, {
            "phase": "Pending",
            "initContainerStatuses": [waiting("CrashLoopBackOff")],
            "containerStatuses": [waiting("PodInitializing")],
        }, ("0/1", "Init:CrashLoopBackOff")),
        ({"initContainers": [{"name": "init", "image": "i"}]}, {
            "phase": "Pending",
            "initContainerStatuses": [terminated(1, "Error")],
        }, ("0/1", "Init:Error")),
        ({"initContainers": [{"name": "init", "image": "i"}]}, {
            "phase": "Pending",
            "initContainerStatuses": [terminated(7)],
        }, ("0/1", "Init:ExitCode:7")),
        ({"initContainers": [SIDECAR]}, {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{**running(), "name": "init", "started": True}],
            "containerStatuses": [running()],
        }, ("2/2", "Running")),
        ({}, {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [terminated(0, "Completed"), running()],
        }, ("1/2", "NotReady")),
    ],
)  # fmt: skip
def test_pod_status_cells(
    extra: dict[str, Any], status: dict[str, Any], shown: tuple[str, str]
) -> None:
    store = Store()
    containers = [{"name": "main", "image": "server:1"}]
    if len(status.get("containerStatuses") or []) == 2:
        containers.append({"name": "second", "image": "server:1"})
    item = {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": containers, **extra},
        "status": status,
    }
    table = tables.table(store, store.resource("", "pods"), "v1", [item], {}, None)
    assert tuple(table["rows"][0]["cells"][1:3]) == shown


def test_terminating_pods_and_finished_rows() -> None:
    store = Store()
    rtype = store.resource("", "pods")
    deleted = {
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "deletionTimestamp": "2026-01-01T00:00:01Z",
    }
    spec = {"containers": [{"name": "main", "image": "server:1"}]}
    items = [
        {"metadata": {"name": "going", **deleted}, "spec": spec,
         "status": {"phase": "Running", "containerStatuses": [running()]}},
        {"metadata": {"name": "lost", **deleted}, "spec": spec,
         "status": {"phase": "Running", "reason": "NodeLost"}},
        {"metadata": {"name": "gone", **deleted}, "spec": spec,
         "status": {"phase": "Succeeded", "containerStatuses": [terminated(0, "Completed")]}},
    ]  # fmt: skip
    rows = tables.table(store, rtype, "v1", items, {}, None)["rows"]
    assert [row["cells"][2] for row in rows] == ["Terminating", "Unknown", "Completed"]
    assert "conditions" not in rows[0]
    assert rows[2]["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


def test_pod_statuses_restarts_and_wide_columns(
    cluster: LocalCluster, core: client.CoreV1Api, kubectl: Output, namespace: str
) -> None:
    cluster.simulation.add(Behaviour(crash_loop=True), name_prefix="crash", namespace=namespace)
    cluster.simulation.add(Behaviour(pending=600), name_prefix="slow", namespace=namespace)
    core.create_namespaced_pod(namespace, pod("run", readinessGates=[{"conditionType": "x/y"}]))
    core.create_namespaced_pod(namespace, pod("crash"))
    core.create_namespaced_pod(namespace, pod("slow-start"))
    init = [{"name": "setup", "image": "server:1"}]
    core.create_namespaced_pod(namespace, pod("slow-init", initContainers=init))
    for name, code in (("done", "0"), ("fail", "3")):
        manifest = pod(name, restartPolicy="Never")
        manifest["metadata"]["annotations"] = {
            "local.gyre.dev/simulate-duration": "0.1",
            "local.gyre.dev/simulate-exit-code": code,
        }
        core.create_namespaced_pod(namespace, manifest)
    wait_for(lambda: phase_is(core, namespace, "done", "Succeeded"))
    wait_for(lambda: phase_is(core, namespace, "fail", "Failed"))
    wait_for(lambda: phase_is(core, namespace, "run", "Running"))

    def crash_looping() -> bool:
        statuses = core.read_namespaced_pod("crash", namespace).status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return waiting is not None and waiting.reason == "CrashLoopBackOff"

    wait_for(crash_looping)
    header, rows = header_and_rows(kubectl("get", "pods", "-n", namespace))
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    pods = by_name(rows)
    assert {name: (row["READY"], row["STATUS"]) for name, row in pods.items()} == {
        "run": ("1/1", "Running"),
        "crash": ("0/1", "CrashLoopBackOff"),
        "slow-start": ("0/1", "ContainerCreating"),
        "slow-init": ("0/1", "Init:0/1"),
        "done": ("0/1", "Completed"),
        "fail": ("0/1", "Error"),
    }
    assert pods["run"]["RESTARTS"] == "0"
    assert re.fullmatch(r"[1-9]\d* \(\d+s ago\)", pods["crash"]["RESTARTS"])
    assert re.fullmatch(r"\d+s", pods["run"]["AGE"])

    header, rows = header_and_rows(kubectl("get", "pods", "-n", namespace, "-o", "wide"))
    assert header == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE",
        "IP", "NODE", "NOMINATED NODE", "READINESS GATES",
    ]  # fmt: skip
    running = core.read_namespaced_pod("run", namespace)
    wide = by_name(rows)
    assert (wide["run"]["IP"], wide["run"]["NODE"]) == (
        running.status.pod_ip,
        running.spec.node_name,
    )
    assert (wide["run"]["NOMINATED NODE"], wide["run"]["READINESS GATES"]) == ("<none>", "0/1")
    assert wide["crash"]["READINESS GATES"] == "<none>"


def test_service_and_endpoints_columns(
    core: client.CoreV1Api, kubectl: Output, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, pod("backend"))
    ports = [{"name": "http", "port": 80, "targetPort": 8080}]
    selector = {"app": "tables", "tier": "web"}
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "web"}, "spec": {"selector": selector, "ports": ports}}
    )
    node_ports = [{"port": 443, "nodePort": 30443, "protocol": "TCP"}]
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "edge"}, "spec": {"type": "NodePort", "ports": node_ports}}
    )
    external = {"type": "ExternalName", "externalName": "db.example.com"}
    core.create_namespaced_service(namespace, {"metadata": {"name": "db"}, "spec": external})
    header, rows = header_and_rows(kubectl("get", "svc", "-n", namespace, "-o", "wide"))
    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    services = by_name(rows)
    web_ip = core.read_namespaced_service("web", namespace).spec.cluster_ip
    assert {name: row["TYPE"] for name, row in services.items()} == {
        "web": "ClusterIP",
        "edge": "NodePort",
        "db": "ExternalName",
    }
    assert [services["web"][c] for c in ("CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "SELECTOR")] == [
        web_ip,
        "<none>",
        "80/TCP",
        "app=tables,tier=web",
    ]
    assert [services["edge"][c] for c in ("EXTERNAL-IP", "PORT(S)", "SELECTOR")] == [
        "<none>",
        "443:30443/TCP",
        "<none>",
    ]
    assert services["db"]["EXTERNAL-IP"] == "db.example.com"
    assert services["db"]["PORT(S)"] == "<none>"

    header, _ = header_and_rows(kubectl("get", "svc", "-n", namespace))
    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    subsets = [
        {"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)], "ports": [{"port": 8080}]}
    ]
    core.create_namespaced_endpoints(
        namespace, {"metadata": {"name": "manual"}, "subsets": subsets}
    )
    header, rows = header_and_rows(kubectl("get", "endpoints", "manual", "-n", namespace))
    assert header == ["NAME", "ENDPOINTS", "AGE"]
    assert rows[0]["ENDPOINTS"] == "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more..."


def test_deployment_and_replica_set_columns(
    apps: client.AppsV1Api, kubectl: Output, namespace: str
) -> None:
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "containers": [
                {"name": "main", "image": "server:1"},
                {"name": "sidecar", "image": "proxy:2"},
            ]
        },
    }
    spec = {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template}
    apps.create_namespaced_deployment(namespace, {"metadata": {"name": "web"}, "spec": spec})

    def available() -> bool:
        status = apps.read_namespaced_deployment("web", namespace).status
        return (status.available_replicas or 0) == 2 and (status.updated_replicas or 0) == 2

    wait_for(available)
    header, rows = header_and_rows(kubectl("get", "deploy", "-n", namespace))
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert [rows[0][c] for c in ("NAME", "READY", "UP-TO-DATE", "AVAILABLE")] == [
        "web", "2/2", "2", "2",
    ]  # fmt: skip
    header, rows = header_and_rows(kubectl("get", "deploy", "-n", namespace, "-o", "wide"))
    assert header[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert [rows[0][c] for c in header[5:]] == ["main,sidecar", "server:1,proxy:2", "app=web"]

    replica_set = apps.list_namespaced_replica_set(namespace).items[0]
    pod_hash = replica_set.metadata.labels["pod-template-hash"]
    header, rows = header_and_rows(kubectl("get", "rs", "-n", namespace, "-o", "wide"))
    assert header == [
        "NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR",
    ]  # fmt: skip
    assert rows[0]["NAME"] == replica_set.metadata.name
    assert [rows[0][c] for c in ("DESIRED", "CURRENT", "READY", "SELECTOR")] == [
        "2", "2", "2", f"app=web,pod-template-hash={pod_hash}",
    ]  # fmt: skip


def test_job_and_cron_job_columns(
    batch: client.BatchV1Api, kubectl: Output, namespace: str
) -> None:
    pod_spec = {"restartPolicy": "Never", "containers": [{"name": "task", "image": "tool:1"}]}
    job = {"metadata": {"name": "once"}, "spec": {"template": {"spec": pod_spec}}}
    batch.create_namespaced_job(namespace, job)
    suspended = {
        "metadata": {"name": "later"},
        "spec": {"suspend": True, "completions": 3, "template": {"spec": pod_spec}},
    }
    batch.create_namespaced_job(namespace, suspended)
    wait_for(lambda: batch.read_namespaced_job("once", namespace).status.completion_time)
    header, rows = header_and_rows(kubectl("get", "jobs", "-n", namespace))
    assert header == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    jobs = by_name(rows)
    assert (jobs["once"]["STATUS"], jobs["once"]["COMPLETIONS"]) == ("Complete", "1/1")
    assert re.fullmatch(r"\d+s", jobs["once"]["DURATION"])
    assert (jobs["later"]["STATUS"], jobs["later"]["COMPLETIONS"]) == ("Suspended", "0/3")
    header, rows = header_and_rows(kubectl("get", "job", "once", "-n", namespace, "-o", "wide"))
    assert header[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    labels = batch.read_namespaced_job("once", namespace).spec.selector.match_labels
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    assert [rows[0][c] for c in header[5:]] == ["task", "tool:1", selector]

    template = {"spec": {"template": {"spec": pod_spec}}}
    cron = {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "jobTemplate": template}
    batch.create_namespaced_cron_job(namespace, {"metadata": {"name": "tick"}, "spec": cron})
    header, rows = header_and_rows(kubectl("get", "cj", "-n", namespace, "-o", "wide"))
    assert header == [
        "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE",
        "CONTAINERS", "IMAGES", "SELECTOR",
    ]  # fmt: skip
    assert [rows[0][c] for c in header[1:6]] == ["*/5 * * * *", "Etc/UTC", "False", "0", "<none>"]
    assert [rows[0][c] for c in header[7:]] == ["task", "tool:1", "<none>"]


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_event_columns_and_ages(core: client.CoreV1Api, kubectl: Output, namespace: str) -> None:
    now = datetime.now(UTC)
    event = {
        "metadata": {"name": "web.1"},
        "involvedObject": {
            "kind": "Pod",
            "name": "web",
            "namespace": namespace,
            "fieldPath": "spec.containers{main}",
        },
        "reason": "BackOff",
        "message": "Back-off restarting failed container\n",
        "type": "Warning",
        "source": {"component": "kubelet", "host": "node-1"},
        "count": 4,
        "firstTimestamp": rfc3339(now - timedelta(hours=51, minutes=20)),
        "lastTimestamp": rfc3339(now - timedelta(minutes=10, seconds=30)),
    }
    core.create_namespaced_event(namespace, event)
    header, rows = header_and_rows(kubectl("get", "events", "-n", namespace))
    assert header == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert rows == [
        {
            "LAST SEEN": "10m",
            "TYPE": "Warning",
            "REASON": "BackOff",
            "OBJECT": "pod/web",
            "MESSAGE": "Back-off restarting failed container",
        }
    ]
    header, rows = header_and_rows(kubectl("get", "events", "-n", namespace, "-o", "wide"))
    assert header == [
        "LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN",
        "COUNT", "NAME",
    ]  # fmt: skip
    assert [rows[0][c] for c in header[4:6] + header[7:]] == [
        "spec.containers{main}", "kubelet, node-1", "2d3h", "4", "web.1",
    ]  # fmt: skip


def test_configuration_and_storage_columns(
    core: client.CoreV1Api, kubectl: Output, namespace: str
) -> None:
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"a": "1", "b": "2"}}
    )
    core.create_namespaced_secret(namespace, {"metadata": {"name": "token"}, "data": {"t": "eA=="}})
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "robot"}})
    claim = {
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "fast",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    phase = core.create_namespaced_persistent_volume_claim(namespace, claim).status.phase
    expected = [
        (["ns", namespace], ["NAME", "STATUS", "AGE"], {"STATUS": "Active"}),
        (["cm", "settings"], ["NAME", "DATA", "AGE"], {"DATA": "2"}),
        (["secret", "token"], ["NAME", "TYPE", "DATA", "AGE"], {"TYPE": "Opaque", "DATA": "1"}),
        (["sa", "robot"], ["NAME", "SECRETS", "AGE"], {"SECRETS": "0"}),
        (
            ["pvc", "data"],
            [
                "NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS", "AGE",
            ],
            {
                "STATUS": phase, "VOLUME": "", "CAPACITY": "", "ACCESS MODES": "",
                "STORAGECLASS": "fast", "VOLUMEATTRIBUTESCLASS": "<unset>",
            },
        ),
    ]  # fmt: skip
    for args, columns, cells in expected:
        header, [row] = header_and_rows(kubectl("get", *args, "-n", namespace))
        assert header == columns, args
        assert {c: row[c] for c in cells} == cells, args
        assert row["NAME"] == args[1]
        assert re.fullmatch(r"\d+s", row["AGE"])
    _, rows = header_and_rows(kubectl("get", "pvc", "data", "-n", namespace, "-o", "wide"))
    assert rows[0]["VOLUMEMODE"] == "Filesystem"


def table_request(cluster: LocalCluster, path: str) -> urllib.request.Request:
    return urllib.request.Request(cluster.url + path, headers={"Accept": TABLE_ACCEPT})


def test_table_json_of_a_list(
    cluster: LocalCluster, apps: client.AppsV1Api, namespace: str
) -> None:
    template = {
        "metadata": {"labels": {"app": "j"}},
        "spec": {"containers": [{"name": "m", "image": "i"}]},
    }
    spec = {"replicas": 0, "selector": {"matchLabels": {"app": "j"}}, "template": template}
    apps.create_namespaced_deployment(namespace, {"metadata": {"name": "zero"}, "spec": spec})
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    with urllib.request.urlopen(
        table_request(cluster, path), timeout=10, context=cluster.ssl_context()
    ) as response:
        table = json.load(response)
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    columns = [
        (c["name"], c["type"], c["format"], c["priority"]) for c in table["columnDefinitions"]
    ]
    assert columns == [
        ("Name", "string", "name", 0),
        ("Ready", "string", "", 0),
        ("Up-to-date", "string", "", 0),
        ("Available", "string", "", 0),
        ("Age", "string", "", 0),
        ("Containers", "string", "", 1),
        ("Images", "string", "", 1),
        ("Selector", "string", "", 1),
    ]
    [row] = table["rows"]
    assert row["cells"][:4] == ["zero", "0/0", 0, 0]
    assert row["cells"][5:] == ["m", "i", "app=j"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "zero"


def test_watch_tables_carry_column_definitions_once(
    cluster: LocalCluster, core: client.CoreV1Api, namespace: str
) -> None:
    listed = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "first"}})
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "second"}, "data": {"k": "v"}}
    )
    path = f"/api/v1/namespaces/{namespace}/configmaps?watch=true&resourceVersion={listed}"
    with urllib.request.urlopen(
        table_request(cluster, path), timeout=10, context=cluster.ssl_context()
    ) as stream:
        events = [json.loads(stream.readline()) for _ in range(2)]
    assert [(e["type"], e["object"]["kind"]) for e in events] == [("ADDED", "Table")] * 2
    first, second = (e["object"] for e in events)
    assert first["columnDefinitions"] == [
        {"name": "Name", "type": "string", "format": "name", "priority": 0},
        {"name": "Data", "type": "string", "format": "", "priority": 0},
        {"name": "Age", "type": "string", "format": "", "priority": 0},
    ]
    assert second["columnDefinitions"] is None
    assert [r["cells"][:2] for r in first["rows"] + second["rows"]] == [["first", 0], ["second", 1]]
    resource_version = second["rows"][0]["object"]["metadata"]["resourceVersion"]
    assert second["metadata"] == {"resourceVersion": resource_version}


def pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    """Move a stream's lines to a queue (readers can then wait with a timeout)."""
    for line in stream:
        lines.put(line)


def test_kubectl_get_watch_prints_the_header_once(
    cluster: LocalCluster, core: client.CoreV1Api, namespace: str, tmp_path: Any
) -> None:
    core.create_namespaced_pod(namespace, pod("early"))
    wait_for(lambda: phase_is(core, namespace, "early", "Running"))
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path), "KUBECACHEDIR": str(tmp_path)}
    command = [KUBECTL, "get", "pods", "-n", namespace, "-w"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as watcher:
        lines: queue.Queue[str] = queue.Queue()
        assert watcher.stdout is not None
        threading.Thread(target=pump, args=(watcher.stdout, lines), daemon=True).start()
        try:
            printed = [lines.get(timeout=20), lines.get(timeout=20)]
            core.create_namespaced_pod(namespace, pod("late"))
            wait_for(lambda: phase_is(core, namespace, "late", "Running"))
            printed += [lines.get(timeout=20)]
            with contextlib.suppress(queue.Empty):
                while True:
                    printed.append(lines.get(timeout=1))
        finally:
            watcher.kill()
    # Each watch line is aligned on its own, so split cells on the column padding.
    header, *rows = [re.split(r"\s{2,}", line.strip()) for line in printed]
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows[0][:4] == ["early", "1/1", "Running", "0"]
    assert {row[0] for row in rows[1:]} == {"late"}
    assert rows[-1][:4] == ["late", "1/1", "Running", "0"]
    assert all(len(row) == 5 for row in rows)


NETWORKING_AND_POLICY = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: nginx
  tls: [{hosts: [a.example.com]}]
  rules: [{host: a.example.com}, {}, {host: b.example.com}, {host: c.example.com}, {host: d.test}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx, parameters: {kind: Params, apiGroup: example.com, name: p}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec: {maxUnavailable: 25%, selector: {matchLabels: {app: web}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny}
spec: {podSelector: {matchLabels: {app: web}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
- {kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}
- {kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}
- {kind: ServiceAccount, name: robot, namespace: tools}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route}
spec: {hostnames: [a.example.com, b.example.com]}
"""


def test_networking_policy_and_rbac_columns(
    cluster: LocalCluster, kubectl: Output, namespace: str
) -> None:
    served = {r.plural for r in cluster.store.resource_types()}
    wanted = {"ingresses", "ingressclasses", "horizontalpodautoscalers", "poddisruptionbudgets"}
    if not wanted | {"networkpolicies", "roles", "rolebindings"} <= served:
        pytest.skip("networking, autoscaling, policy and RBAC kinds are not served")
    kubectl("apply", "-n", namespace, "-f", "-", stdin=NETWORKING_AND_POLICY)
    expected = {
        "ingress": (
            ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
            [
                "web",
                "nginx",
                "a.example.com,b.example.com,c.example.com + 2 more...",
                "",
                "80, 443",
            ],
        ),
        "ingressclass": (
            ["NAME", "CONTROLLER", "PARAMETERS", "AGE"],
            ["nginx", "k8s.io/ingress-nginx", "Params.example.com/p"],
        ),
        "hpa": (
            ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"],
            ["web", "Deployment/web", "cpu: <unknown>/80%", "2", "5", "0"],
        ),
        "pdb": (
            ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"],
            ["web", "N/A", "25%", "0"],
        ),
        "netpol": (["NAME", "POD-SELECTOR", "AGE"], ["deny", "app=web"]),
        "rolebindings": (
            ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
            ["read", "Role/reader"],
        ),
        "httproutes": (
            ["NAME", "HOSTNAMES", "AGE"],
            ["route", '["a.example.com","b.example.com"]'],
        ),
    }
    for resource, (columns, cells) in expected.items():
        header, [row] = header_and_rows(kubectl("get", resource, "-n", namespace, "-o", "wide"))
        assert header == columns, resource
        assert [row[c] for c in columns[: len(cells)]] == cells, resource
    _, [row] = header_and_rows(kubectl("get", "rolebindings", "-n", namespace, "-o", "wide"))
    assert [row["USERS"], row["GROUPS"], row["SERVICEACCOUNTS"]] == [
        "alice, bob", "devs", "tools/robot",
    ]  # fmt: skip
    header, [row] = header_and_rows(kubectl("get", "role", "reader", "-n", namespace))
    assert header == ["NAME", "CREATED AT"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["CREATED AT"])


def test_custom_resource_columns_keep_their_types(
    cluster: LocalCluster, kubectl: Output, namespace: str, widget_crd_manifest: dict[str, Any]
) -> None:
    version = widget_crd_manifest["spec"]["versions"][0]
    version["additionalPrinterColumns"] = [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Tags", "type": "string", "jsonPath": ".spec.tags"},
        {"name": "Ready", "type": "boolean", "jsonPath": ".spec.color"},
        {"name": "Made", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1},
    ]
    extensions = client.ApiextensionsV1Api(cluster.api_client())
    extensions.create_custom_resource_definition(widget_crd_manifest)
    try:
        widget = {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 3, "tags": ["a", "b"]},
        }
        custom = client.CustomObjectsApi(cluster.api_client())
        wait_for(lambda: create_widget(custom, namespace, widget))
        path = f"/apis/example.com/v1/namespaces/{namespace}/widgets"
        with urllib.request.urlopen(
            table_request(cluster, path), timeout=10, context=cluster.ssl_context()
        ) as response:
            table = json.load(response)
        columns = [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]]
        assert columns == [
            ("Name", "string", 0), ("Size", "integer", 0), ("Tags", "string", 0),
            ("Ready", "boolean", 0), ("Made", "date", 0), ("Color", "string", 1),
        ]  # fmt: skip
        cells = table["rows"][0]["cells"]
        assert cells[:4] == ["w", 3, '["a","b"]', None]
        assert re.fullmatch(r"\d+s", cells[4])
        assert cells[5] == "red"
        header, [row] = header_and_rows(kubectl("get", "widgets", "-n", namespace))
        assert header == ["NAME", "SIZE", "TAGS", "READY", "MADE"]
        assert [row["SIZE"], row["TAGS"], row["READY"]] == ["3", '["a","b"]', ""]
    finally:
        extensions.delete_custom_resource_definition(widget_crd_manifest["metadata"]["name"])


def create_widget(custom: client.CustomObjectsApi, namespace: str, widget: dict[str, Any]) -> bool:
    """Create the widget once its CRD is served."""
    try:
        custom.create_namespaced_custom_object("example.com", "v1", namespace, "widgets", widget)
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_node_columns(cluster: LocalCluster, core: client.CoreV1Api, kubectl: Output) -> None:
    if "nodes" not in {r.plural for r in cluster.store.resource_types()}:
        pytest.skip("nodes are not served")
    [node] = core.list_node().items
    header, [row] = header_and_rows(kubectl("get", "nodes", "-o", "wide"))
    assert header == [
        "NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
        "KERNEL-VERSION", "CONTAINER-RUNTIME",
    ]  # fmt: skip
    roles = sorted(
        label.removeprefix("node-role.kubernetes.io/")
        for label in node.metadata.labels or {}
        if label.startswith("node-role.kubernetes.io/")
    )
    internal = [a.address for a in node.status.addresses if a.type == "InternalIP"]
    info = node.status.node_info
    assert [row[c] for c in header if c != "AGE"] == [
        node.metadata.name, "Ready", ",".join(roles) or "<none>", info.kubelet_version,
        internal[0], "<none>", info.os_image, info.kernel_version,
        info.container_runtime_version,
    ]  # fmt: skip


def test_events_api_events_print_like_core_events(
    cluster: LocalCluster, kubectl: Output, namespace: str
) -> None:
    now = datetime.now(UTC)
    event = {
        "metadata": {"name": "job.2"},
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": "job-controller",
        "reportingInstance": "local",
        "action": "Create",
        "reason": "SuccessfulCreate",
        "note": "Created pod: job-x",
        "type": "Normal",
        "regarding": {"kind": "Job", "name": "job", "namespace": namespace},
        "series": {"count": 7, "lastObservedTime": rfc3339(now - timedelta(minutes=3, seconds=2))},
    }
    client.EventsV1Api(cluster.api_client()).create_namespaced_event(namespace, event)
    header, [row] = header_and_rows(
        kubectl("get", "events.v1.events.k8s.io", "-n", namespace, "-o", "wide")
    )
    assert header[:4] == ["LAST SEEN", "TYPE", "REASON", "OBJECT"]
    assert [row[c] for c in header if c not in ("LAST SEEN", "FIRST SEEN")] == [
        "Normal", "SuccessfulCreate", "job/job", "", "job-controller, local",
        "Created pod: job-x", "7", "job.2",
    ]  # fmt: skip
    assert re.fullmatch(r"3m\ds", row["LAST SEEN"])
    assert re.fullmatch(r"\d+s", row["FIRST SEEN"])


def test_kinds_without_a_printer_show_their_creation_time(
    cluster: LocalCluster, kubectl: Output, widget_crd_manifest: dict[str, Any]
) -> None:
    names = widget_crd_manifest["spec"]["names"]
    names.update(plural="gadgets", singular="gadget", kind="Gadget", shortNames=[])
    widget_crd_manifest["metadata"]["name"] = "gadgets.example.com"
    extensions = client.ApiextensionsV1Api(cluster.api_client())
    extensions.create_custom_resource_definition(widget_crd_manifest)
    try:
        header, [row] = header_and_rows(kubectl("get", "crd", "gadgets.example.com"))
    finally:
        extensions.delete_custom_resource_definition("gadgets.example.com")
    assert header == ["NAME", "CREATED AT"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["CREATED AT"])
