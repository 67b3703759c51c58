"""kubectl logs -f / --previous, exec, cp and port-forward against process pods; exec,
attach and port-forward both over WebSockets and over plain SPDY/3.1."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.stream import portforward, stream

from gyre_local.cluster import LocalCluster, wait_for

pytestmark = pytest.mark.cluster
NS = "default"
IMAGE = "local/python:3.11"
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]
# kubectl 1.32 streams over WebSockets first; with these it speaks plain SPDY/3.1 only, as
# older clients (and kubectl's fallback) do.
STREAM_PROTOCOLS: dict[str, dict[str, str]] = {
    "websocket": {},
    "spdy": {
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false",
        "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false",
    },
}

COUNTER = """
import time
for word in ("one", "two", "three"):
    print(word)
    time.sleep(0.7)
"""
RESTARTER = """
import pathlib, time
marker = pathlib.Path("/data/ran")
if marker.exists():
    print("second run")
    time.sleep(3600)
marker.write_text("yes")
print("first run")
raise SystemExit(1)
"""


@pytest.fixture(scope="module")
def cluster(process_cluster: LocalCluster) -> LocalCluster:
    """This module's tests run pods as processes."""
    return process_cluster


@pytest.fixture(scope="module")
def kubectl_env(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment kubectl runs with: the cluster's kubeconfig, a cache of its own."""
    return {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig_path),
        "KUBECACHEDIR": str(tmp_path_factory.mktemp("kubecache")),
    }


@pytest.fixture(params=sorted(STREAM_PROTOCOLS))
def stream_protocol(request: pytest.FixtureRequest) -> str:
    """What kubectl streams over: plain SPDY, then WebSockets."""
    return str(request.param)


@pytest.fixture
def stream_env(stream_protocol: str, kubectl_env: dict[str, str]) -> dict[str, str]:
    """kubectl's environment for streaming over the protocol."""
    return {**kubectl_env, **STREAM_PROTOCOLS[stream_protocol]}


@pytest.fixture(scope="module")
def kubectl(kubectl_env: dict[str, str]) -> Kubectl:
    return kubectl_with(kubectl_env)


@pytest.fixture
def stream_kubectl(stream_env: dict[str, str]) -> Kubectl:
    """kubectl streaming over the protocol."""
    return kubectl_with(stream_env)


def kubectl_with(env: dict[str, str]) -> Kubectl:
    """A function running kubectl in this environment."""

    def run(*args: str, stdin: str | None = None, cwd: Path | None = None) -> Any:
        return subprocess.run(
            ["kubectl", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=cwd,
        )

    return run


def python_pod(name: str, script: str, **options: Any) -> dict[str, Any]:
    restart_policy = options.pop("restart_policy", "Never")
    volumes = options.pop("volumes", [])
    main = {"name": "main", "image": IMAGE, "command": ["python", "-c", script], **options}
    spec: dict[str, Any] = {"restartPolicy": restart_policy, "containers": [main]}
    if volumes:
        spec["volumes"] = volumes
    return {"metadata": {"name": name, "labels": {"app": name}}, "spec": spec}


def running(core: client.CoreV1Api, name: str, restarts: int = 0) -> bool:
    found = core.read_namespaced_pod(name, NS)
    statuses = found.status.container_statuses or []
    return bool(
        statuses and statuses[0].state.running is not None and statuses[0].restart_count == restarts
    )


def test_logs_follow_until_the_container_ends(core: client.CoreV1Api, kubectl: Kubectl) -> None:
    core.create_namespaced_pod(NS, python_pod("counter", COUNTER))
    wait_for(lambda: running(core, "counter"))
    followed = kubectl("logs", "-f", "counter")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "one\ntwo\nthree\n"
    assert kubectl("logs", "counter", "--limit-bytes=6").stdout == "one\ntw"


STAMPED = """
import time
print("early", flush=True)
time.sleep(1.5)
print("late", flush=True)
time.sleep(3600)
"""
RFC3339_NANO = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d*[1-9])?Z)"


def test_logs_timestamps_and_since(core: client.CoreV1Api, kubectl: Kubectl) -> None:
    before = datetime.now(UTC)
    core.create_namespaced_pod(NS, python_pod("stamped", STAMPED))
    wait_for(lambda: kubectl("logs", "stamped").stdout == "early\nlate\n")
    stamped = kubectl("logs", "stamped", "--timestamps").stdout
    match = re.fullmatch(f"{RFC3339_NANO} early\n{RFC3339_NANO} late\n", stamped)
    assert match, stamped
    early, late = (datetime.fromisoformat(t) for t in match.groups())
    assert before <= early <= late <= datetime.now(UTC)
    since_late = kubectl("logs", "stamped", f"--since-time={match[2]}")
    assert since_late.stdout == "late\n", since_late.stderr
    assert kubectl("logs", "stamped", "--since=1h").stdout == "early\nlate\n"
    tail = kubectl("logs", "stamped", "--tail=1", "--timestamps").stdout
    assert tail == f"{match[2]} late\n"


def test_previous_log_after_a_restart(core: client.CoreV1Api, kubectl: Kubectl) -> None:
    pod = python_pod(
        "restarter",
        RESTARTER,
        restart_policy="OnFailure",
        volumes=[{"name": "data", "emptyDir": {}}],
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
    )
    core.create_namespaced_pod(NS, pod)
    wait_for(lambda: running(core, "restarter", restarts=1))
    wait_for(lambda: kubectl("logs", "restarter").stdout == "second run\n")
    previous = kubectl("logs", "restarter", "--previous")
    assert previous.returncode == 0, previous.stderr
    assert previous.stdout == "first run\n"


def test_previous_log_without_a_restart_is_a_bad_request(
    core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    core.create_namespaced_pod(NS, python_pod("steady", "import time; time.sleep(3600)"))
    wait_for(lambda: running(core, "steady"))
    previous = kubectl("logs", "steady", "-p")
    assert previous.returncode == 1
    assert previous.stderr.strip() == (
        'Error from server (BadRequest): previous terminated container "main" in pod "steady" '
        "not found"
    )


@pytest.fixture(scope="module")
def shell_pod(core: client.CoreV1Api) -> str:
    pod = python_pod(
        "shell", "import time; time.sleep(3600)", env=[{"name": "GREETING", "value": "hello"}]
    )
    core.create_namespaced_pod(NS, pod)
    wait_for(lambda: running(core, "shell"))
    return "shell"


def test_exec_streams_output_and_exit_code(shell_pod: str, stream_kubectl: Kubectl) -> None:
    command = ("sh", "-c", "echo $GREETING; echo oops >&2; exit 3")
    result = stream_kubectl("exec", shell_pod, "--", *command)
    assert result.returncode == 3
    assert result.stdout == "hello\n"
    assert result.stderr == "oops\ncommand terminated with exit code 3\n"
    assert stream_kubectl("exec", shell_pod, "--", "true").returncode == 0


def test_exec_with_stdin(shell_pod: str, stream_kubectl: Kubectl) -> None:
    script = "import sys; print(sys.stdin.read().upper(), end='')"
    stdin = "up\nper\n"
    result = stream_kubectl("exec", "-i", shell_pod, "--", "python", "-c", script, stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "UP\nPER\n"


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_exec_with_a_terminal(shell_pod: str, stream_env: dict[str, str]) -> None:
    inner = f"kubectl exec -it {shell_pod} -- sh -c 'tty; stty size; read x; echo got $x; exit 5'"
    # script(1) runs kubectl on a terminal of 17 rows and 91 columns.
    result = subprocess.run(
        ["script", "-qec", f"stty rows 17 cols 91; {inner}", "/dev/null"],
        env=stream_env,
        input="abc\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 5
    # The typed line is echoed by the terminals whenever it arrives.
    lines = [line for line in result.stdout.replace("\r", "").splitlines() if line != "abc"]
    assert re.fullmatch(r"/dev/pts/\d+", lines[-4])
    assert lines[-3:] == ["17 91", "got abc", "command terminated with exit code 5"]


def test_cp_both_ways(shell_pod: str, stream_kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "sent.txt").write_text("payload\n" * 1000)
    sent = stream_kubectl("cp", "sent.txt", f"{shell_pod}:copied.txt", cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    copied = stream_kubectl("exec", shell_pod, "--", "cat", "copied.txt")
    assert copied.stdout == "payload\n" * 1000
    back = stream_kubectl("cp", f"{shell_pod}:copied.txt", "back.txt", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert (tmp_path / "back.txt").read_text() == "payload\n" * 1000


UPPER = "import sys; print(sys.stdin.read().upper(), end=''); raise SystemExit(int(sys.argv[1]))"


@pytest.mark.parametrize("code", [0, 4])
def test_run_attached_with_stdin(stream_kubectl: Kubectl, stream_protocol: str, code: int) -> None:
    name = f"attached-{stream_protocol}-{code}"
    run = stream_kubectl(
        *("run", name, "-i", "--rm", "--restart=Never", f"--image={IMAGE}", "--command"),
        *("--", "python", "-c", UPPER, str(code)),
        stdin="hello\nworld\n",
    )
    assert run.returncode == code, run.stderr
    assert run.stdout == f'HELLO\nWORLD\npod "{name}" deleted\n'
    if code:
        assert run.stderr.endswith(f"pod default/{name} terminated (Error)\n")


@pytest.fixture(scope="module")
def web_pod(core: client.CoreV1Api) -> str:
    # Ready once it listens: a port-forward before that would be refused.
    probe = {"tcpSocket": {"port": 8000}, "periodSeconds": 1}
    pod = python_pod("web", "", ports=[{"containerPort": 8000}], readinessProbe=probe)
    pod["spec"]["containers"][0]["command"] = ["python", "-m", "http.server", "$(PORT)"]
    core.create_namespaced_pod(NS, pod)
    service = {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8000}]},
    }
    core.create_namespaced_service(NS, service)
    wait_for(lambda: core.read_namespaced_pod("web", NS).status.container_statuses[0].ready)
    return "web"


@pytest.mark.parametrize("target", ["pod/web:8000", "svc/web:80"])
def test_port_forward_serves_http(web_pod: str, stream_env: dict[str, str], target: str) -> None:
    resource, port = target.split(":")
    forwarder = subprocess.Popen(
        ["kubectl", "port-forward", resource, f":{port}"],
        env=stream_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert forwarder.stdout is not None
        line = forwarder.stdout.readline()
        match = re.fullmatch(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8000\n", line)
        assert match, line + (forwarder.stderr.read() if forwarder.poll() is not None else "")
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{match[1]}/") as response:
                assert response.status == 200
                assert b"Directory listing for /" in response.read()
    finally:
        forwarder.terminate()
        forwarder.wait(10)


def test_port_forward_reports_a_refused_connection(
    web_pod: str, stream_env: dict[str, str]
) -> None:
    forwarder = subprocess.Popen(
        ["kubectl", "port-forward", "pod/web", ":9"],
        env=stream_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert forwarder.stdout is not None and forwarder.stderr is not None
        match = re.fullmatch(
            r"Forwarding from 127\.0\.0\.1:(\d+) -> 9\n", forwarder.stdout.readline()
        )
        assert match
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{match[1]}/").read()
        errors = forwarder.stderr.read()
    finally:
        forwarder.kill()
        forwarder.wait(10)
    assert (
        f"an error occurred forwarding {match[1]} -> 9: error forwarding port 9 to pod web"
        in errors
    )
    assert "dial tcp4 127.0.0.1:9: connect: connection refused" in errors


def test_exec_in_a_simulated_pod_is_a_bad_request(
    core: client.CoreV1Api, stream_kubectl: Kubectl, stream_protocol: str
) -> None:
    name = f"simulated-{stream_protocol}"
    pod = python_pod(name, "import time; time.sleep(3600)")
    pod["metadata"]["annotations"] = {"local.gyre.dev/kubelet": "simulated"}
    core.create_namespaced_pod(NS, pod)
    wait_for(lambda: running(core, name))
    result = stream_kubectl("exec", name, "--", "true")
    assert result.returncode == 1
    assert f'container "main" in pod "{name}" is not running as a local process' in result.stderr


def test_exec_without_an_upgrade_is_a_bad_request(shell_pod: str, kubectl: Kubectl) -> None:
    result = kubectl("get", "--raw", f"/api/v1/namespaces/{NS}/pods/{shell_pod}/exec?command=true")
    assert result.returncode == 1
    assert result.stderr.strip() == "Error from server (BadRequest): Upgrade request required"


def test_spdy_upgrade_without_a_common_protocol_is_forbidden(
    shell_pod: str, core: client.CoreV1Api
) -> None:
    api = core.api_client
    response = api.rest_client.pool_manager.request(
        "POST",
        f"{api.configuration.host}/api/v1/namespaces/{NS}/pods/{shell_pod}/exec?command=true",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": "v9.channel.k8s.io",
        },
    )
    assert response.status == 403
    assert response.headers["X-Accepted-Stream-Protocol-Versions"] == "v4.channel.k8s.io"
    assert response.data.decode() == (
        "unable to upgrade: unable to negotiate protocol: client supports [v9.channel.k8s.io], "
        "server accepts [v4.channel.k8s.io]\n"
    )


def test_python_client_exec_and_port_forward(
    core: client.CoreV1Api, shell_pod: str, web_pod: str
) -> None:
    """The official Python client speaks v4.channel.k8s.io for both."""
    command = ["sh", "-c", "echo out; echo err >&2; exit 3"]
    session = stream(
        core.connect_get_namespaced_pod_exec,
        *(shell_pod, NS),
        command=command,
        stderr=True,
        stdout=True,
        _preload_content=False,
    )
    session.run_forever(timeout=30)
    assert (session.read_stdout(), session.read_stderr()) == ("out\n", "err\n")
    assert session.returncode == 3
    forward = portforward(core.connect_get_namespaced_pod_portforward, web_pod, NS, ports="8000,9")
    connection = forward.socket(8000)
    connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n")
    assert forward.error(8000) is None
    uid = core.read_namespaced_pod(web_pod, NS).metadata.uid
    assert forward.error(9) == (
        f"error forwarding port 9 to pod web, uid {uid}: dial tcp4 127.0.0.1:9: connect: "
        "connection refused"
    )
