"""The process kubelet: pods of mapped images run as real local processes."""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.request
from typing import Any

import pytest
from kubernetes import client

from gyre_local.cluster import LocalCluster, wait_for
from gyre_local.kubelet.process import ImageMap, PathRewriter, expand, resolve_executable

pytestmark = pytest.mark.cluster
NS = "default"
IMAGE = "local/python:3.11"

ENV_SCRIPT = """
import json, os, pathlib
names = ["POD_NAME", "POD_NS", "POD_UID", "POD_IP", "TEAM", "GREETING", "TOKEN", "DERIVED",
         "DATA_DIR", "GYRE_MOUNT_CONFIG", "GYRE_LOCAL_ROOT", "PORT", "GYRE_PORT_METRICS"]
report = {name: os.environ.get(name) for name in names}
report["config_file"] = pathlib.Path(os.environ["GYRE_MOUNT_CONFIG"], "settings.ini").read_text()
report["secret_file"] = pathlib.Path("/var/secret/token").read_text()
report["scratch_is_dir"] = pathlib.Path(os.environ["DATA_DIR"]).is_dir()
print(json.dumps(report))
pathlib.Path("/dev/termination-log").write_text(json.dumps({"status": "ok"}))
"""


@pytest.fixture(scope="module")
def cluster(process_cluster: LocalCluster) -> LocalCluster:
    """This module's tests run pods as processes."""
    return process_cluster


def python_pod(
    name: str,
    script: str,
    *,
    restart_policy: str = "Never",
    image: str = IMAGE,
    **container: Any,
) -> dict[str, Any]:
    volumes = container.pop("volumes", [])
    init = container.pop("init_containers", [])
    main = {"name": "main", "image": image, "command": ["python", "-c", script], **container}
    spec: dict[str, Any] = {"restartPolicy": restart_policy, "containers": [main]}
    if volumes:
        spec["volumes"] = volumes
    if init:
        spec["initContainers"] = init
    return {"metadata": {"name": name, "labels": {"team": "ml"}}, "spec": spec}


def finished(core: client.CoreV1Api, name: str) -> Any:
    found = core.read_namespaced_pod(name, NS)
    return found if found.status.phase in ("Succeeded", "Failed") else None


def main_status(found: Any) -> Any:
    return found.status.container_statuses[0]


def test_env_volumes_and_termination_message(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": "settings"}, "data": {"greeting": "hi", "settings.ini": "[a]\n"}}
    )
    token = base64.b64encode(b"s3cret").decode()
    core.create_namespaced_secret(NS, {"metadata": {"name": "creds"}, "data": {"token": token}})
    field = {"POD_NAME": "metadata.name", "POD_NS": "metadata.namespace", "POD_UID": "metadata.uid"}
    env: list[dict[str, Any]] = [
        {"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in field.items()
    ]
    env += [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        {
            "name": "GREETING",
            "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}},
        },
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "DERIVED", "value": "$(GREETING)-$(POD_NAME)-$$(KEPT)"},
        {"name": "DATA_DIR", "value": "/scratch"},
    ]
    spec = python_pod(
        "envy",
        ENV_SCRIPT,
        env=env,
        ports=[{"name": "metrics", "containerPort": 9090}],
        volumeMounts=[
            {"name": "config", "mountPath": "/etc/config"},
            {"name": "secret", "mountPath": "/var/secret", "readOnly": True},
            {"name": "scratch", "mountPath": "/scratch"},
        ],
        volumes=[
            {"name": "config", "configMap": {"name": "settings"}},
            {"name": "secret", "secret": {"secretName": "creds"}},
            {"name": "scratch", "emptyDir": {}},
        ],
    )
    created = core.create_namespaced_pod(NS, spec)
    found = wait_for(lambda: finished(core, "envy"))
    assert found.status.phase == "Succeeded"
    terminated = main_status(found).state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert json.loads(terminated.message) == {"status": "ok"}
    report = json.loads(core.read_namespaced_pod_log("envy", NS).strip().splitlines()[-1])
    local_ports = json.loads(found.metadata.annotations["local.gyre.dev/ports"])
    assert report == {
        "POD_NAME": "envy",
        "POD_NS": NS,
        "POD_UID": created.metadata.uid,
        "POD_IP": "127.0.0.1",
        "TEAM": "ml",
        "GREETING": "hi",
        "TOKEN": "s3cret",
        "DERIVED": "hi-envy-$(KEPT)",
        "DATA_DIR": report["DATA_DIR"],
        "GYRE_MOUNT_CONFIG": report["GYRE_MOUNT_CONFIG"],
        "GYRE_LOCAL_ROOT": report["GYRE_LOCAL_ROOT"],
        "PORT": str(local_ports["9090"]),
        "GYRE_PORT_METRICS": str(local_ports["9090"]),
        "config_file": "[a]\n",
        "secret_file": "s3cret",
        "scratch_is_dir": True,
    }
    assert report["DATA_DIR"].startswith(report["GYRE_LOCAL_ROOT"])
    assert report["GYRE_MOUNT_CONFIG"].startswith(report["GYRE_LOCAL_ROOT"])


def test_a_claim_is_the_kubelets_claim_directory_shared_by_pods(
    cluster: LocalCluster, core: client.CoreV1Api
) -> None:
    claim_dir = cluster.kubelet.claim_directory(NS, "shared-data")
    claim_dir.mkdir(parents=True)
    (claim_dir / "given.txt").write_text("from the host")
    script = (
        "import pathlib; data = pathlib.Path('/data')\n"
        "print((data / 'given.txt').read_text())\n"
        "(data / 'written.txt').write_text('from the pod')"
    )
    spec = python_pod(
        "claimant",
        script,
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "shared-data"}}],
    )
    core.create_namespaced_pod(NS, spec)
    assert wait_for(lambda: finished(core, "claimant")).status.phase == "Succeeded"
    assert core.read_namespaced_pod_log("claimant", NS).strip() == "from the host"
    assert (claim_dir / "written.txt").read_text() == "from the pod"


def test_failure_exit_code_and_fallback_to_logs(core: client.CoreV1Api) -> None:
    script = "import sys; print('cannot open the data set'); sys.exit(7)"
    core.create_namespaced_pod(
        NS, python_pod("broken", script, terminationMessagePolicy="FallbackToLogsOnError")
    )
    found = wait_for(lambda: finished(core, "broken"))
    assert found.status.phase == "Failed"
    terminated = main_status(found).state.terminated
    assert (terminated.exit_code, terminated.reason) == (7, "Error")
    assert terminated.message.strip() == "cannot open the data set"


def test_on_failure_restarts_until_success(core: client.CoreV1Api) -> None:
    script = (
        "import os, pathlib, sys\n"
        "marker = pathlib.Path(os.environ['GYRE_MOUNT_WORK'], 'tried')\n"
        "if not marker.exists():\n"
        "    marker.write_text('once'); print('first run fails'); sys.exit(1)\n"
        "print('second run succeeds')\n"
    )
    spec = python_pod(
        "flaky",
        script,
        restart_policy="OnFailure",
        volumeMounts=[{"name": "work", "mountPath": "/work"}],
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    core.create_namespaced_pod(NS, spec)
    found = wait_for(lambda: finished(core, "flaky"))
    assert found.status.phase == "Succeeded"
    status = main_status(found)
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 1
    assert core.read_namespaced_pod_log("flaky", NS) == "second run succeeds\n"


def test_init_containers_run_first(core: client.CoreV1Api) -> None:
    write = "import pathlib; pathlib.Path('/shared/model.onnx').write_text('weights')"
    read = "print(open('/shared/model.onnx').read())"
    mount = [{"name": "shared", "mountPath": "/shared"}]
    init = [
        {"name": "fetch", "image": IMAGE, "command": ["python", "-c", write], "volumeMounts": mount}
    ]
    spec = python_pod(
        "initialised",
        read,
        volumeMounts=mount,
        volumes=[{"name": "shared", "emptyDir": {}}],
        init_containers=init,
    )
    core.create_namespaced_pod(NS, spec)
    found = wait_for(lambda: finished(core, "initialised"))
    assert found.status.phase == "Succeeded"
    assert found.status.init_container_statuses[0].state.terminated.reason == "Completed"
    assert core.read_namespaced_pod_log("initialised", NS, container="main") == "weights\n"


def test_readiness_probe_gates_ready_and_deletion_stops_the_process(
    core: client.CoreV1Api,
) -> None:
    spec = python_pod(
        "server",
        "import os; print(os.getpid(), flush=True)\n"
        "import http.server as h; h.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])),"
        " h.SimpleHTTPRequestHandler).serve_forever()",
        restart_policy="Always",
        ports=[{"name": "http", "containerPort": 8000}],
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    )
    core.create_namespaced_pod(NS, spec)

    def ready() -> Any:
        found = core.read_namespaced_pod("server", NS)
        return any(c.type == "Ready" and c.status == "True" for c in found.status.conditions or [])

    wait_for(ready)
    found = core.read_namespaced_pod("server", NS)
    port = json.loads(found.metadata.annotations["local.gyre.dev/ports"])["8000"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
        assert response.status == 200
    pid = int(wait_for(lambda: core.read_namespaced_pod_log("server", NS).split()[:1])[0])
    core.delete_namespaced_pod("server", NS)

    def dead() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(dead)


def test_liveness_failure_restarts_the_container(core: client.CoreV1Api) -> None:
    spec = python_pod(
        "unhealthy",
        "import time; time.sleep(60)",
        restart_policy="Always",
        ports=[{"containerPort": 8001}],
        livenessProbe={"tcpSocket": {"port": 8001}, "periodSeconds": 1, "failureThreshold": 1},
    )
    core.create_namespaced_pod(NS, spec)

    def restarted() -> Any:
        statuses = core.read_namespaced_pod("unhealthy", NS).status.container_statuses or []
        return statuses and statuses[0].restart_count >= 1 and statuses[0]

    status = wait_for(restarted)
    assert status.last_state.terminated.exit_code == 143  # SIGTERM
    core.delete_namespaced_pod("unhealthy", NS)


def test_missing_config_map_waits_then_runs(core: client.CoreV1Api) -> None:
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "mode"}}}]
    core.create_namespaced_pod(
        NS, python_pod("patient", "import os; print(os.environ['MODE'])", env=env)
    )

    def waiting_reason() -> Any:
        statuses = core.read_namespaced_pod("patient", NS).status.container_statuses or []
        return statuses and statuses[0].state.waiting and statuses[0].state.waiting.reason

    assert wait_for(waiting_reason) == "CreateContainerConfigError"
    core.create_namespaced_config_map(NS, {"metadata": {"name": "late"}, "data": {"mode": "fast"}})
    assert wait_for(lambda: finished(core, "patient")).status.phase == "Succeeded"
    assert core.read_namespaced_pod_log("patient", NS) == "fast\n"


def test_unmapped_images_are_simulated(core: client.CoreV1Api) -> None:
    spec = python_pod("elsewhere", "raise SystemExit(1)", image="registry.example/other:1")
    core.create_namespaced_pod(NS, spec)
    wait_for(lambda: core.read_namespaced_pod("elsewhere", NS).status.phase == "Running")
    assert "local.gyre.dev/ports" not in (
        core.read_namespaced_pod("elsewhere", NS).metadata.annotations or {}
    )


def test_expand_follows_kubernetes_rules() -> None:
    variables = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)-$(C)-$$(A)-$$", variables) == "1-two-$(C)-$(A)-$"


def test_path_rewriter_maps_mount_paths_only_at_path_boundaries() -> None:
    rewrite = PathRewriter({"/data": "/tmp/pod/data", "/data/models": "/tmp/pod/models"})
    assert rewrite("/data/x.csv") == "/tmp/pod/data/x.csv"
    assert rewrite("--out=/data/models/m.onnx") == "--out=/tmp/pod/models/m.onnx"
    assert rewrite("/database/x") == "/database/x"
    assert rewrite("file:///data/iris.csv") == "file:///tmp/pod/data/iris.csv"
    assert rewrite("s3://bucket/data/x") == "s3://bucket/data/x"
    assert rewrite("/data") == "/tmp/pod/data"


def test_image_map_matches_with_and_without_tags() -> None:
    images = ImageMap({"local/python": "/usr/bin/python3", "exact:2": ["tool", "--flag"]})
    assert images.entrypoint("local/python:3.11") == ["/usr/bin/python3"]
    assert images.entrypoint("local/python@sha256:abc") == ["/usr/bin/python3"]
    assert images.entrypoint("exact:2") == ["tool", "--flag"]
    assert images.entrypoint("exact:3") is None
    assert images.entrypoint("ghcr.io/acme/gyre-runtime:0.1.0") is not None
    assert ImageMap(defaults=False).entrypoint("ghcr.io/acme/gyre-runtime:0.1.0") is None
    assert resolve_executable("python3") == sys.executable


def test_port_flags_naming_a_container_port_point_at_the_local_port(
    core: client.CoreV1Api,
) -> None:
    spec = python_pod(
        "flags",
        "import json, sys; print(json.dumps(sys.argv[1:]))",
        args=["--port", "8080", "--port=8080", "--port", "9999", "$(PORT)"],
        ports=[{"containerPort": 8080}],
    )
    core.create_namespaced_pod(NS, spec)
    found = wait_for(lambda: finished(core, "flags"))
    local = str(json.loads(found.metadata.annotations["local.gyre.dev/ports"])["8080"])
    argv = json.loads(core.read_namespaced_pod_log("flags", NS))
    assert argv == ["--port", local, f"--port={local}", "--port", "9999", local]
